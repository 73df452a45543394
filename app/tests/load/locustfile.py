"""The service's load profile (`nox -s load -- ENV`): users, spawn rate and duration come from
stageflow.toml ([environments.NAME.tests]); the result is compared with the environment's gates."""

from locust import HttpUser, constant_throughput, task


class ServiceUser(HttpUser):
    # each user sends at most one request per second: the total rate is bounded by the user count
    wait_time = constant_throughput(1)

    @task(5)
    def hello(self):
        self.client.get("/hello?name=load", name="/hello")

    @task(1)
    def health(self):
        self.client.get("/health", name="/health")
