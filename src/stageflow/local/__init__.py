"""Local mode: the embedded AWS emulator, its bootstrap, and the traffic simulator."""
