"""The wheel built from this repository installs and runs without the repository.

A wheel is built from a clean copy of the checkout's files (what git tracks or would track:
no build/ left over, no node_modules), its file list is checked, and it is installed into
fresh virtual environments in temporary directories (dependencies from the package index,
through pip's cache):

- with the `node` extra: `rxledger --version`, a dev node that answers JSON-RPC and stops
  cleanly on SIGTERM, `rxledger network init` (deployment templates are package data), the
  contract artifacts read from the installed package;
- without extras (what a hospital installs for the client SDK): the SDK imports, py-evm
  (`eth`), plyvel, fastapi, uvicorn and tomli-w are absent, and the node's commands answer
  with one line and exit 1 (rxledger.extras.require_node_extra, called by the console
  entry before it imports a node command).

Every command runs from a temporary directory with PYTHONPATH unset, so nothing is
imported from the checkout.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rxledger import __version__
from rxledger.extras import NODE_EXTRA_MESSAGE

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 600
CHAIN_ID = 2024

pytestmark = pytest.mark.timeout(900)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(args: list[str | Path], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def source_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked or untracked, not ignored), symbolic
    links kept as links."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in sorted(set(listed.decode().split("\0")) - {""}):
        src, dst = REPO_ROOT / name, dest / name
        if not src.is_symlink() and not src.exists():
            continue  # deleted in the work tree, not yet in git
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = source_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the build uses this environment's setuptools (the test extra),
    # so building needs no network.
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--wheel-dir", out, source], cwd=out, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list(out.glob("rxledger-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def make_venv(wheel: Path, where: Path, extras: str = "") -> Path:
    """A fresh virtual environment in `where` with the wheel (and `extras`) installed; its bin/."""
    venv.EnvBuilder(with_pip=True).create(where)
    python = where / "bin" / "python"
    started = time.monotonic()
    installed = run([python, "-m", "pip", "install", "--quiet", f"{wheel}{extras}"], cwd=where,
                    timeout=INSTALL_TIMEOUT)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    print(f"pip install {wheel.name}{extras}: {time.monotonic() - started:.1f} s")
    return where / "bin"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc(url: str, method: str) -> object:
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []},
                        timeout=10).json()
    assert "error" not in answer, answer
    return answer["result"]


def test_the_wheel_holds_the_packages_and_their_data_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"rxledger", "node", "network", "chaincode_py", "client_sdk",
                    f"rxledger-{__version__}.dist-info"}
    artifacts = {Path(n).name for n in names if n.startswith("rxledger/core/_artifacts/")}
    committed = {p.name for p in (REPO_ROOT / "contracts" / "artifacts").glob("*.json")}
    assert artifacts == committed and committed
    for name in committed:  # copies of the committed files, not links or stale builds
        data = zipfile.ZipFile(wheel).read(f"rxledger/core/_artifacts/{name}")
        assert data == (REPO_ROOT / "contracts" / "artifacts" / name).read_bytes()
    templates = {Path(n).name for n in names if n.startswith("network/templates/")}
    assert templates == {p.name for p in (REPO_ROOT / "network" / "templates").iterdir()}
    data_files = [n for n in names if not n.endswith(".py") and ".dist-info/" not in n
                  and not n.startswith(("rxledger/core/_artifacts/", "network/templates/"))]
    assert data_files == []
    for junk in ("tests/", "bench/", "node_modules", "contracts/", ".sol", "__pycache__", ".pyc"):
        assert not [n for n in names if junk in n], junk


@pytest.fixture(scope="module")
def node_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_venv(wheel, tmp_path_factory.mktemp("venv-node"), "[node]")


def test_the_node_install_runs_a_dev_node_that_answers_json_rpc(node_venv: Path, tmp_path: Path) -> None:
    version = run([node_venv / "rxledger", "--version"], cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"rxledger {__version__}"

    where = run([node_venv / "python", "-c",
                 "import rxledger, node; from rxledger.core.artifacts import ARTIFACTS_DIR, load_artifact;"
                 "print(rxledger.__file__); print(node.__file__); print(ARTIFACTS_DIR);"
                 "print(sorted(load_artifact('PrescriptionRegistry')))"], cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    lines = where.stdout.splitlines()
    venv_root = node_venv.parent.resolve()
    for line in lines[:3]:
        assert Path(line).resolve().is_relative_to(venv_root), (line, venv_root)
    assert "'abi'" in lines[3]

    port = free_port()
    log = (tmp_path / "node.log").open("wb")
    process = subprocess.Popen(
        [str(node_venv / "rxledger"), "node", "start", "--dev", "--data-dir", str(tmp_path / "data"),
         "--rpc-port", str(port)],
        cwd=tmp_path, env=clean_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "node.log").read_text(errors="replace")
            try:
                if httpx.get(url + "health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "node.log").read_text(errors="replace")
            time.sleep(0.2)
        assert rpc(url, "eth_chainId") == hex(CHAIN_ID)
        assert int(str(rpc(url, "eth_blockNumber")), 16) >= 0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait(10)
        log.close()
    assert code == 0, (tmp_path / "node.log").read_text(errors="replace")


def test_the_node_install_writes_a_network_with_its_deployment_templates(node_venv: Path,
                                                                          tmp_path: Path) -> None:
    init = run([node_venv / "rxledger", "network", "init", "--out", tmp_path / "net"], cwd=tmp_path)
    assert init.returncode == 0, init.stdout + init.stderr
    deploy = tmp_path / "net" / "deploy"
    template = REPO_ROOT / "network" / "templates" / "Dockerfile"
    assert (deploy / "Dockerfile").read_text().startswith(template.read_text().splitlines()[0])
    assert (deploy / "rxledger-node@.service").is_file()
    assert (tmp_path / "net" / "nodes" / "hospital-a" / "node.toml").is_file()


@pytest.fixture(scope="module")
def sdk_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield make_venv(wheel, tmp_path_factory.mktemp("venv-sdk"))


def test_the_base_install_has_the_sdk_without_the_node(sdk_venv: Path, tmp_path: Path) -> None:
    sdk = run([sdk_venv / "python", "-c",
               "import client_sdk; from rxledger.core.artifacts import load_artifact;"
               "print(len(load_artifact('AnchorRegistry')['abi']))"], cwd=tmp_path)
    assert sdk.returncode == 0, sdk.stderr
    assert int(sdk.stdout) > 0
    for module in ("eth", "plyvel", "fastapi", "uvicorn", "tomli_w"):  # eth: py-evm
        absent = run([sdk_venv / "python", "-c", f"import {module}"], cwd=tmp_path)
        assert absent.returncode == 1 and f"No module named '{module}'" in absent.stderr, module


def test_the_base_install_answers_node_commands_with_one_line(sdk_venv: Path, tmp_path: Path) -> None:
    version = run([sdk_venv / "rxledger", "--version"], cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"rxledger {__version__}"
    for command in (["node", "start", "--dev", "--data-dir", tmp_path / "data"],
                    ["network", "init", "--out", tmp_path / "net"],
                    ["up", "--dir", tmp_path / "net"]):
        answer = run([sdk_venv / "rxledger", *command], cwd=tmp_path)
        assert answer.returncode == 1, (command, answer.stdout, answer.stderr)
        assert answer.stderr.startswith(f"rxledger: {NODE_EXTRA_MESSAGE} (missing: eth, plyvel"), \
            (command, answer.stderr)
        assert answer.stderr.count("\n") == 1, answer.stderr
        assert answer.stdout == ""
    assert not (tmp_path / "data").exists() and not (tmp_path / "net").exists()
