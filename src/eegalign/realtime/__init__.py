"""Live decoding over Lab Streaming Layer: the loopback-only liblsl configuration (:mod:`.lslconfig`)."""
