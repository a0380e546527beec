"""Models trained here: the shared recipe and the introspective classifier (icn)."""
