"""Stage 4, probe: linear probes per layer, dense probes and human alignment."""
