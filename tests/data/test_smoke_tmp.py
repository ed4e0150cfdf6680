from pathlib import Path

def test_cli_add(workspace, cli):
    Path("d").mkdir()
    Path("d/a.txt").write_text("a")
    r = cli("data", "add", "d")
    assert r.exit_code == 0, r.output
    assert "added d@v1" in r.stdout
    r = cli("data", "checkout", "d@v9")
    assert r.exit_code == 1
    assert r.stderr.startswith("error: d@v9 does not exist"), r.output
