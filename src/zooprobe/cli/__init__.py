"""The command line: one thin command per stage, and the tools apart."""
