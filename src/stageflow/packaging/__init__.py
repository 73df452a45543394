"""Artifacts: the Lambda zip (lambda_zip.py) and Docker images (docker SDK)."""
