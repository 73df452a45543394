"""CLI: stageflow build ENV — multi-stage Docker images, tagged by commit, pushed to ENV's registry."""

from __future__ import annotations

from pathlib import Path

import click


def register(cli: click.Group) -> None:
    from stageflow.packaging.images import DEFAULT_TARGETS, TARGETS

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
    @click.option(
        "--json-out",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Also write the result (images, tags, pushed digests) as JSON to this file.",
    )
    @click.pass_obj
    def build_cmd(factory, env, targets, push, base_image, json_out):
        """Build the service's Docker image(s) for ENV through the local or configured Docker engine.

        Runs the app's unit tests in the `test` stage (a failure fails the build, exit 3), tags
        <service>:<git sha> and <service>:<git describe>, pushes to environments.ENV.registry (ECR in AWS,
        the local registry of scripts/docker-engine.sh in local mode) and prints the image digest.
        """
        from stageflow.packaging.docker_build import build_for_env

        factory.env(env)  # an unknown environment: exit 2 before touching Docker
        result = build_for_env(
            factory.config,
            env,
            state_dir=factory.state_dir,
            reporter=factory.reporter,
            registry_for=lambda engine: factory.registry(env, engine),
            targets=tuple(targets),
            push=push,
            base_image=base_image,
        )
        rep = factory.reporter
        lines = [f"built {result.service} {result.version} ({result.revision[:12]}) in {result.seconds:.1f}s"]
        for img in result.images:
            where = img.repo_digests[0] if img.repo_digests else ", ".join(img.tags)
            lines.append(f"  {img.target}: {img.image_id[:19]} {where}")
        data = {"environment": env, **result.to_json()}
        if json_out is not None:
            import json

            json_out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        rep.result("\n".join(lines), data)
