"""Shell completion the way ``kes`` does it (cli.md §2.3): a bash ``complete -C`` helper.

With ``$SHELL`` ending in bash or zsh and ``$COMP_LINE`` set, the program prints candidates for
the line and exits before anything else runs. ``--auto-completion`` adds the ``complete`` line
to ``~/.bashrc`` or ``~/.zshrc``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

_INSECURE = ("--insecure",)
_LISTING = ("--insecure", "--json", "--color")
COMPLETIONS: dict[str, tuple[str, ...]] = {
    "": (
        *("server", "ls", "key", "policy", "identity", "log", "status", "metric"),
        *("migrate", "migrate-config", "doctor"),
    ),
    "server": ("--config", "--addr", "--dev", "--workers", "--threads", "--mlock"),
    "ls": ("--api-key", "--server", "--json", "--identity", "--policy", "--insecure"),
    "log": ("--audit", "--error", "--json", "--insecure"),
    "status": ("--short", "--api", "--json", "--color", "--insecure"),
    "metric": ("--rate", "--insecure"),
    "key": ("create", "import", "info", "ls", "rm", "encrypt", "decrypt", "dek"),
    "key create": _INSECURE,
    "key import": _INSECURE,
    "key rm": _INSECURE,
    "key encrypt": _INSECURE,
    "key decrypt": _INSECURE,
    "key dek": _INSECURE,
    "key info": _LISTING,
    "key ls": _LISTING,
    "policy": ("info", "ls", "show"),
    "policy info": _LISTING,
    "policy ls": _LISTING,
    "policy show": ("--insecure", "--json"),
    "identity": ("new", "of", "info", "ls"),
    "identity new": ("--key", "--cert", "--force", "--ip", "--dns", "--expiry", "--encrypt"),
    "identity of": (),
    "identity info": _LISTING,
    "identity ls": _LISTING,
}


def completion_requested(env: Mapping[str, str]) -> bool:
    return env.get("SHELL", "").endswith(("bash", "zsh")) and "COMP_LINE" in env


def complete(line: str) -> list[str]:
    """Candidates for a command line (its first word is the program)."""
    words = [word for word in line.split()[1:] if not word.startswith("-")]
    rest = "" if line.endswith(" ") else (line.split()[-1] if len(line.split()) > 1 else "")
    if rest and not rest.startswith("-"):
        words = words[:-1]
    entry = ""
    for size in range(len(words), 0, -1):
        candidate = " ".join(words[:size])
        if candidate in COMPLETIONS:
            entry = candidate
            break
    return [word for word in COMPLETIONS[entry] if word.startswith(rest)]


def install(program: str, env: Mapping[str, str] | None = None) -> str:
    """Add the completion line to the shell's rc file; the text to print."""
    env = os.environ if env is None else env
    shell = env.get("SHELL")
    if sys.platform == "win32":
        raise ValueError("auto-completion is not available for windows")
    if not shell:
        raise ValueError("failed to detect shell. The env variable $SHELL is not defined")
    if shell.endswith("zsh"):
        rc_file, lines = "~/.zshrc", ["autoload -U +X bashcompinit && bashcompinit"]
    elif shell.endswith("bash"):
        rc_file, lines = "~/.bashrc", []
    else:
        raise ValueError(f"auto-completion for '{os.path.basename(shell)}' is not available")
    executable = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else program
    lines.append(f"complete -o default -C {executable} {program}")
    path = os.path.expanduser(rc_file)
    try:
        with open(path, encoding="utf-8") as file:
            present = file.read().splitlines()
    except OSError as err:
        raise ValueError(f"open {path}: {(err.strerror or str(err)).lower()}") from None
    missing = [line for line in lines if line not in present]
    if not missing:
        return "Completion is already installed.\n"
    with open(path, "a", encoding="utf-8") as file:
        file.write("".join(f"{line}\n" for line in missing))
    text = f"Added completion to '{path}'\n\n"
    text += f"To uninstall completion remove the following lines from '{path}':\n"
    return text + "".join(f"   {line}\n" for line in missing)
