"""The load profile `stageflow load` runs headless: the sample service's two endpoints."""

from locust import HttpUser, constant_throughput, task


class ServiceUser(HttpUser):
    # each user sends at most one request per second; the total rate is bounded by --users
    wait_time = constant_throughput(1)

    @task(5)
    def hello(self):
        self.client.get("/hello?name=load", name="/hello")

    @task(1)
    def health(self):
        self.client.get("/health", name="/health")
