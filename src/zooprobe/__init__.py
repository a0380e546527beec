"""zooprobe: does a model's ranking hold up across benchmarks, layers and shifts?"""

from __future__ import annotations

__version__ = "0.1.0"

# What "the code" is for provenance: the package, the rules and the schema that drive it.
CODE_PATHS = ("src", "rules", "Snakefile", "schemas")


def code_version() -> str:
    """Return the package version, with the git commit, and a mark when the code has uncommitted changes.

    Returns:
        ``"0.1.0"`` outside a checkout; ``"0.1.0+g<sha>"`` when :data:`CODE_PATHS` match the commit;
        ``"0.1.0+g<sha>.dirty-<hash>"`` when they do not, ``<hash>`` being a sha256 over the
        uncommitted diff and the new files, so the same edits give the same version (and the same
        output bytes) and other edits another.
    """
    import hashlib
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> bytes:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=10, check=True).stdout

    try:
        sha = git("rev-parse", "--short=12", "HEAD").decode().strip()
        diff = git("diff", "HEAD", "--binary", "--", *CODE_PATHS)
        new = git("ls-files", "-z", "--others", "--exclude-standard", "--", *CODE_PATHS).split(b"\0")
    except (OSError, subprocess.SubprocessError):
        return __version__
    if not sha:
        return __version__
    new_files = sorted(name for name in new if name)
    if not diff and not new_files:
        return f"{__version__}+g{sha}"
    digest = hashlib.sha256(diff)
    for name in new_files:
        digest.update(name + b"\0")
        path = root / name.decode()
        if path.is_file():
            digest.update(path.read_bytes())
    return f"{__version__}+g{sha}.dirty-{digest.hexdigest()[:12]}"
