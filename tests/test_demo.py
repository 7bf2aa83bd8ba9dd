import json

from PIL import Image

import seglab
from seglab.cli.main import main


def test_demo_writes_sheet_page_and_tiles(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--method", "otsu", "--method", "slic"]) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in rows] == ["otsu", "slic"]
    assert all(len(r["results"]) == 3 and all(x["seconds"] > 0 for x in r["results"]) for r in rows)
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size[0] > 300 and sheet.size[1] > 2 * 200
    assert Image.open(out / "overview.png").size[0] > 100
    page = (out / "index.html").read_text()
    assert "otsu" in page and "slic" in page and "contact_sheet.png" in page and "nbins=256" in page
    assert len(list((out / "tiles").glob("*.png"))) == 6


def test_demo_unknown_method_is_a_user_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--method", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_every_registered_method_is_documented():
    for m in seglab.methods():
        assert m.description and m.reference and m.family
        for p in m.params:
            assert p.help, (m.name, p.name)
