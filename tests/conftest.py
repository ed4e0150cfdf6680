"""Fixtures shared by the whole suite: workspaces, the CLI, and the S3-compatible server."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from loopml.store.workspace import Workspace, init_workspace
from support import Cli, CliResult


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LOOPML_* setting of the machine leaks into a test."""
    for key in list(os.environ):
        if key.startswith("LOOPML_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("LOOPML_USER", "tester")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A fresh workspace in a temporary folder, which is also the current folder."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    ws, _ = init_workspace(root)
    try:
        yield ws
    finally:
        ws.close()


class _Entry:
    """Adapts ``loopml.cli.main.run`` (which exits) to what ``CliRunner.invoke`` calls."""

    name = "loopml"

    def main(self, args: list[str], **_: object) -> None:
        from loopml.cli.main import run

        run(args)


@pytest.fixture
def cli() -> Cli:
    """Run ``loopml ARGS`` in process, through the same entry point as the script."""
    runner = CliRunner()

    def invoke(*args: str) -> CliResult:
        result = runner.invoke(_Entry(), list(args), catch_exceptions=False)  # type: ignore[arg-type]
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto in server mode on 127.0.0.1: a real S3-compatible HTTP endpoint."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the test S3 server; returns ``s3://bucket``."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("LOOPML_S3_ENDPOINT_URL", s3_server)
    name = f"bucket-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}"
