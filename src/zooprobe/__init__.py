"""zooprobe: does a model's ranking hold up across benchmarks, layers and shifts?"""

from __future__ import annotations

__version__ = "0.1.0"


def code_version() -> str:
    """Return the package version, with the git commit when run from a checkout.

    Returns:
        ``"0.1.0"`` or ``"0.1.0+g<sha>"``; the commit makes provenance point at exact code.
    """
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{sha}" if sha else __version__
