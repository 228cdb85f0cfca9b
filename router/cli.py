"""embeddings-router: serve, check-config, config-reference, keys new, usage, export."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from pathlib import Path

from router import config as config_mod
from router.auth import DEV_ADMIN_KEY_SHA256, DEV_KEY, DEV_KEY_SHA256, new_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="embeddings-router", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the router")
    serve.add_argument("--config", default=str(config_mod.DEFAULT_CONFIG))
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--log-format", choices=("json", "console"),
                       default=os.environ.get("EMBEDDINGS_ROUTER_LOG_FORMAT", "json"),
                       help="json lines (production) or console (development); env EMBEDDINGS_ROUTER_LOG_FORMAT")
    serve.add_argument("--log-level", default=os.environ.get("EMBEDDINGS_ROUTER_LOG_LEVEL", "info"),
                       help="debug, info, warning, error; env EMBEDDINGS_ROUTER_LOG_LEVEL")
    serve.add_argument("--no-watch", action="store_true",
                       help="do not reload when the config file changes (SIGHUP and POST /admin/reload still do)")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes on one port (needs limits.backend: redis)")

    check = commands.add_parser("check-config", help="validate a config file (exit 0 or 1)")
    check.add_argument("file")
    commands.add_parser("config-reference", help="print every config field (markdown: path, type, default, "
                        "meaning), generated from the config schema")

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    new = key_commands.add_parser("new", help="print a fresh key once, and its config entry")
    new.add_argument("name")

    usage = commands.add_parser("usage", help="usage by hour and key/model/deployment: from Redis where the config "
                                "keeps usage there, else from the running router's /admin/usage")
    usage.add_argument("--config", default=str(config_mod.DEFAULT_CONFIG))
    usage.add_argument("--from", dest="start", help="ISO date or time, UTC unless it says (default: 24 hours ago)")
    usage.add_argument("--to", dest="end", help="ISO date or time (default: now)")
    usage.add_argument("--group-by", default="key,model", help="any of key, model, deployment, comma-separated")
    usage.add_argument("--format", choices=("table", "csv", "json"), default="table")
    usage.add_argument("--url", help="the running router, when usage is in its memory "
                       "(default: http://server.host:server.port from the config)")
    usage.add_argument("--admin-key", default=os.environ.get("EMBEDDINGS_ROUTER_ADMIN_KEY"),
                       help="an admin key, for --url; env EMBEDDINGS_ROUTER_ADMIN_KEY")

    export = commands.add_parser("export", help="export the config's local models to ONNX (needs torch)")
    export.add_argument("--config", default=str(config_mod.DEFAULT_CONFIG))

    args = parser.parse_args(argv)
    return {"serve": _serve, "check-config": _check, "config-reference": _reference, "keys": _keys,
            "usage": _usage, "export": _export}[args.command](args)


def _load(path: str) -> config_mod.Config | None:
    try:
        return config_mod.load(path)
    except config_mod.ConfigError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    config = _load(args.file)
    if config is None:
        return 1
    print(f"{args.file}: ok ({len(config.providers)} providers, {len(config.models)} models, "
          f"{len(config.keys)} keys; version {config.version})")
    for model in config.models.values():
        if model.unsafe_mixed_spaces:
            spaces = ", ".join(sorted({d.space for d in model.deployments}))
            print(f"warning: models.{model.name}: unsafe_mixed_spaces lets it mix embedding spaces ({spaces}); "
                  "its vectors are not comparable across its deployments", file=sys.stderr)
    return 0


def _reference(args: argparse.Namespace) -> int:
    from router.config_reference import markdown

    print(markdown(), end="")
    return 0


def _keys(args: argparse.Namespace) -> int:
    key, digest = new_key()
    print(f"# The key for {args.name!r}, shown only now; hand it over and keep no copy:\n#   {key}\n"
          f"# Its entry for the config's `keys:` list:\n"
          f"- name: {args.name}\n  sha256: {digest}\n  models: [\"*\"]")
    return 0


def _usage(args: argparse.Namespace) -> int:
    from router.usage_report import report

    config = _load(args.config)
    if config is None:
        return 1
    try:
        print(report(config, args), end="")
    except ValueError as exc:
        print(f"usage: {exc}", file=sys.stderr)
        return 1
    return 0


def _export(args: argparse.Namespace) -> int:
    from router.local import export, model_files

    config = _load(args.config)
    if config is None:
        return 1
    for provider in config.providers.values():
        if provider.kind != "local":
            continue
        for name, settings in provider.settings.models.items():
            files = model_files.load(settings.path)
            path, made = export.ensure_exported(files, settings.quantize)
            print(f"{provider.name}/{name}: {'exported to' if made else 'cached at'} {path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from router.app import create_app
    from router.server import uvicorn_options

    config = _load(args.config)
    if config is None:
        return 1
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    if any(k.sha256 == DEV_KEY_SHA256 for k in config.keys) and not _is_loopback(host):
        print(f"refusing to listen on {host}: the config accepts the well-known development key "
              f"{DEV_KEY!r}; remove it from `keys:` (make one with `embeddings-router keys new NAME`) "
              "or listen on 127.0.0.1", file=sys.stderr)
        return 1
    if any(k.sha256 == DEV_ADMIN_KEY_SHA256 for k in config.admin_keys) and not _is_loopback(host):
        print(f"refusing to listen on {host}: the config accepts the well-known development admin key "
              "under `admin_keys:`; replace it (make one with `embeddings-router keys new NAME`) "
              "or listen on 127.0.0.1", file=sys.stderr)
        return 1
    options = dict(host=host, port=port, log_level="warning", **uvicorn_options(config.server))
    if args.workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 1
    if args.workers > 1:
        if config.limits.backend != "redis":
            print(f"refusing --workers {args.workers}: with `limits: {{backend: {config.limits.backend}}}` each "
                  f"worker counts limits on its own, so every key would get {args.workers} times its limits; "
                  "set `limits: {backend: redis}` (and `cache: {backend: redis}` to share the cache) or run one "
                  "worker", file=sys.stderr)
            return 1
        # Each worker process builds its own app from the same file (see router.app.app_from_environment).
        os.environ.update({"EMBEDDINGS_ROUTER_CONFIG": str(Path(args.config).resolve()),
                           "EMBEDDINGS_ROUTER_LOG_FORMAT": args.log_format,
                           "EMBEDDINGS_ROUTER_LOG_LEVEL": args.log_level,
                           "EMBEDDINGS_ROUTER_WATCH": "0" if args.no_watch else "1"})
        uvicorn.run("router.app:app_from_environment", factory=True, workers=args.workers, **options)
        return 0
    uvicorn.run(create_app(config, config_path=args.config, log_format=args.log_format,
                           log_level=args.log_level, watch=not args.no_watch), **options)
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None))
        except (OSError, ValueError):
            return False


if __name__ == "__main__":
    sys.exit(main())
