"""Publishing a version and shipping it in canary steps: the pure state machine and its driver."""
