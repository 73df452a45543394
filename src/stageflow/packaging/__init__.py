"""Artifacts: the Lambda zips (lambda_zip.py, requirements.py) and Docker images (images.py,
docker_engine.py, docker_build.py, through the docker SDK)."""
