"""``kes-flask server``: run the server (gunicorn master in this process)."""

from __future__ import annotations

import click

from kes_flask.cli.common import PflagCommand
from kes_flask.config.errors import ConfigError
from kes_flask.server import hardening
from kes_flask.server.address import check_available
from kes_flask.server.banner import banner
from kes_flask.server.console import configure_console
from kes_flask.server.gunicorn_app import (
    DEFAULT_THREADS,
    DEFAULT_WORKERS,
    KesApplication,
    ServerOptions,
)
from kes_flask.server.hardening import MemoryLock
from kes_flask.server.startup import prepare
from kes_flask.server.worker import ServingOptions
from kes_flask.telemetry.logs import FORMATS

_DEFAULTS = ServingOptions()

_DEPRECATED = {
    "key": "Specify the private key in the config file",
    "cert": "Specify the certificate in the config file",
    "auth": "Specify the client certificate verification in the config file",
}


def _warn_deprecated(flag: str) -> None:
    click.echo(
        f"WARNING: '--{flag}' flag is deprecated and no longer honored. {_DEPRECATED[flag]}",
        err=True,
    )


@click.command("server", cls=PflagCommand)  # pflag errors, usage on stderr (cli.md §3.1)
@click.option(
    "--config", "config_path", metavar="FILE", help="YAML config file (required unless --dev)."
)
@click.option(
    "--addr",
    default="",
    metavar="IP:PORT",
    help="Listen address; overrides 'address' in the config.",
)
@click.option("--dev", is_flag=True, help="Start a throwaway development server on 127.0.0.1:7373.")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=DEFAULT_WORKERS,
    show_default=True,
    envvar="KES_FLASK_WORKERS",
    help="gunicorn worker processes [env: KES_FLASK_WORKERS].",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 1024),
    default=DEFAULT_THREADS,
    show_default=True,
    envvar="KES_FLASK_THREADS",
    help="Request threads per worker [env: KES_FLASK_THREADS].",
)
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    envvar="KES_FLASK_LOG_FORMAT",
    help="Console log lines: Go slog text or one JSON object per line [env: KES_FLASK_LOG_FORMAT].",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(0.1, 3600),
    default=_DEFAULTS.header_timeout,
    show_default=True,
    envvar="KES_FLASK_HEADER_TIMEOUT",
    help="Seconds a client may take to send a request's headers [env: KES_FLASK_HEADER_TIMEOUT].",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(0.1, 3600),
    default=_DEFAULTS.body_timeout,
    show_default=True,
    envvar="KES_FLASK_BODY_TIMEOUT",
    help="Seconds a client may take to send a request body [env: KES_FLASK_BODY_TIMEOUT].",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(0.1, 3600),
    default=_DEFAULTS.idle_timeout,
    show_default=True,
    envvar="KES_FLASK_IDLE_TIMEOUT",
    help="Seconds an idle kept-alive connection stays open [env: KES_FLASK_IDLE_TIMEOUT].",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 100_000),
    default=_DEFAULTS.max_connections,
    show_default=True,
    envvar="KES_FLASK_MAX_CONNECTIONS",
    help="Open connections per worker; more wait in the listen queue "
    "[env: KES_FLASK_MAX_CONNECTIONS].",
)
@click.option("--mlock", is_flag=True, help="Lock all memory (mlockall) so keys never reach swap.")
@click.option("--key", hidden=True, help="Deprecated, ignored.")
@click.option("--cert", hidden=True, help="Deprecated, ignored.")
@click.option("--auth", hidden=True, help="Deprecated, ignored.")
def server(
    config_path: str | None,
    addr: str,
    dev: bool,
    workers: int,
    threads: int,
    log_format: str,
    header_timeout: float,
    body_timeout: float,
    idle_timeout: float,
    max_connections: int,
    mlock: bool,
    key: str | None,
    cert: str | None,
    auth: str | None,
) -> None:
    """Start a KES server."""
    for flag, value in (("key", key), ("cert", cert), ("auth", auth)):
        if value is not None:
            _warn_deprecated(flag)
    configure_console(log_format)
    serving = ServingOptions(
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
    )
    hardening.disable_core_dumps()
    if dev:
        if config_path:
            raise click.ClickException("'--config' flag is not supported in development mode")
        _run_dev(addr, workers, threads, serving, MemoryLock.choose(mlock, None), log_format)
        return
    if not config_path:
        raise click.ClickException(
            "no config file: the '--config FILE' option is missing or empty. "
            "For a throwaway development server run 'kes-flask server --dev'"
        )
    _run(config_path, addr, workers, threads, serving, mlock, log_format)


def _run(
    config_path: str,
    addr: str,
    workers: int,
    threads: int,
    serving: ServingOptions,
    mlock_flag: bool,
    log_format: str,
) -> None:
    from kes_flask.config.loader import load_config

    config = load_config(config_path)
    # Locked before the keystore is touched: the master creates the pre-defined keys.
    # The mode is fixed at start; a reload does not change it.
    mode = MemoryLock.choose(mlock_flag, config.mlock)
    locked = hardening.apply_memory_lock(mode)
    state = prepare(config, addr)
    check_available(state.host, state.port)
    options = ServerOptions(
        workers=workers,
        threads=threads,
        serving=serving,
        mlock=hardening.worker_mode(locked),
        banner=lambda s: banner(s.config, s.keystore_description, s.host, s.port, mlock=locked),
        reload_state=lambda: prepare(load_config(config_path), addr),
        log_format=log_format,
    )
    KesApplication(state, options).run()


def _run_dev(
    addr: str,
    workers: int,
    threads: int,
    serving: ServingOptions,
    mode: MemoryLock,
    log_format: str,
) -> None:
    from kes_flask.server.address import parse_listen_address
    from kes_flask.server.dev import DEV_ADDRESS, create_dev_environment

    host, _ = parse_listen_address(addr or DEV_ADDRESS)
    locked = hardening.apply_memory_lock(mode)
    env = create_dev_environment(host)
    try:
        state = prepare(env.config, addr or DEV_ADDRESS)
        check_available(state.host, state.port)
    except ConfigError:
        env.remove()
        raise
    cert, key = env.client_files()
    url = f"https://{state.host if state.host not in ('', '0.0.0.0') else '127.0.0.1'}:{state.port}"  # noqa: S104
    hints = (
        f"curl --cacert {env.server_cert} --cert {cert} --key {key} {url}/v1/status",
        f"KES_SERVER={url} KES_API_KEY={env.api_key} kes-flask key create my-key -k",
    )
    options = ServerOptions(
        workers=workers,
        threads=threads,
        serving=serving,
        mlock=hardening.worker_mode(locked),
        banner=lambda s: banner(
            s.config,
            "Filesystem (temporary): " + env.directory,
            s.host,
            s.port,
            api_key=str(env.api_key),
            mlock=locked,
            hints=hints,
        ),
        on_exit=env.remove,
        log_format=log_format,
    )
    KesApplication(state, options).run()
