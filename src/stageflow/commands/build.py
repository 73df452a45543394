"""CLI: stageflow build ENV — multi-stage Docker images, tagged by commit, pushed to ENV's registry."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    from stageflow.build.docker_build import DEFAULT_TARGETS, TARGETS

    @cli.command("build")
    @click.argument("env")
    @click.option(
        "--target",
        "targets",
        multiple=True,
        type=click.Choice(TARGETS),
        help=f"Dockerfile stage to build (repeatable; default: {', '.join(DEFAULT_TARGETS)}).",
    )
    @click.option(
        "--push/--no-push", default=True, help="Push to the environment's registry (default: push)."
    )
    @click.option(
        "--base-image",
        default=None,
        help="BASE_IMAGE build argument (default: the local engine's base image, else python:3.11-slim).",
    )
    @click.pass_obj
    def build_cmd(factory, env, targets, push, base_image):
        """Build the service's Docker image(s) for ENV through the local or configured Docker engine.

        Runs the app's unit tests in the `test` stage (a failure fails the build, exit 3), tags
        <service>:<git sha> and <service>:<git describe>, pushes to environments.ENV.registry (ECR in AWS,
        the local registry of scripts/docker-engine.sh in local mode) and prints the image digest.
        """
        from stageflow.build import docker_build as db

        cfg = factory.config
        env_cfg = cfg.env(env)
        engine = db.engine_info()
        client = db.docker_client(engine)
        registry = db.RegistryTarget(host=None)
        if push:
            registry = db.resolve_registry(
                env_cfg.registry,
                local=factory.local,
                engine=engine,
                ecr_client=lambda: factory.aws.client("ecr"),
            )
        options = db.BuildOptions(
            root=cfg.root,
            service=cfg.service.name,
            targets=tuple(targets) or DEFAULT_TARGETS,
            push=push,
            base_image=base_image or db.default_base_image(client, engine),
            app_dir=cfg.service.source,
        )
        rep = factory.reporter
        result = db.build_images(client, options, registry, info=rep.info, child=rep.child)
        db.record_build(factory.state_dir, env, result)
        lines = [f"built {result.service} {result.version} ({result.revision[:12]}) in {result.seconds:.1f}s"]
        for img in result.images:
            where = img.repo_digests[0] if img.repo_digests else ", ".join(img.tags)
            lines.append(f"  {img.target}: {img.image_id[:19]} {where}")
        rep.result("\n".join(lines), {"environment": env, **result.to_json()})
