"""Rollback: all traffic to the last known good (or a given) version, at once, recorded and notified.

One core (:mod:`.core`); two entries: ``stageflow rollback`` (:mod:`.cli`) and the rollback function
Terraform deploys (:mod:`.handler`). The canary driver's roll-back action uses :func:`.core.restore`.
"""
