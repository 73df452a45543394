"""CLI: stageflow package --out DIR — the Build stage's artifact (build once, deploy many)."""

from __future__ import annotations

from pathlib import Path

import click


def register(cli: click.Group) -> None:
    @cli.command("package")
    @click.option(
        "--out",
        "out_dir",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="The artifact directory: the zips and manifest.json are written here.",
    )
    @click.option(
        "--image-digest",
        default=None,
        envvar="STAGEFLOW_IMAGE_DIGEST",
        help="sha256:… of the image the pipeline's image project pushed (recorded in the manifest). "
        "Env: STAGEFLOW_IMAGE_DIGEST.",
    )
    @click.option(
        "--image-uri", default=None, envvar="STAGEFLOW_IMAGE_URI", help="The image's repository URI."
    )
    @click.option("--commit", default=None, help="The commit built (default: git rev-parse HEAD).")
    @click.pass_obj
    def package_cmd(factory, out_dir, image_digest, image_uri, commit):
        """Build the Lambda zips once (the service zip, requirements installed, and the rollback zip)
        and write them with a manifest of their SHA-256 digests to OUT; every deploy action then runs
        `stageflow deploy ENV --artifacts OUT`, which verifies and uses them and never rebuilds."""
        from stageflow.commands.canary import _git_commit
        from stageflow.packaging import bundle

        pk = factory.package()
        cfg = factory.config
        manifest = bundle.write(
            pk,
            out_dir,
            service=cfg.service.name,
            commit=commit or _git_commit(factory),
            image_digest=image_digest,
            image_uri=image_uri,
        )
        lines = [f"build artifact {out_dir}:"]
        lines += [
            f"  {name} sha256:{e['sha256'][:16]}… {e['bytes']} bytes" for name, e in manifest["files"].items()
        ]
        image = manifest["image"]
        lines.append(f"  image {image['digest']}" if image else "  image: none (no image digest given)")
        factory.reporter.result("\n".join(lines), {"directory": str(out_dir), "manifest": manifest})
