"""kes-flask: a KES-compatible key encryption server on Flask and gunicorn."""

__version__ = "0.1.0"
__commit__ = "<unknown>"  # replaced by release builds; /version reports it
