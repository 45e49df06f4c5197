"""The manual (docs/, mkdocs.yml) against the code: the configuration page is generated
from flows/params.py, so every parameter must have a description; links must resolve."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _hook():
    spec = importlib.util.spec_from_file_location("greenlight_docs_hook",
                                                  DOCS / "hooks" / "config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _models():
    from cli.settings import SECTIONS
    from flows import params

    return [(section, getattr(params, name)) for section, name in SECTIONS.items()]


def _page() -> str:
    """docs/configuration.md as the build renders it (the hook's markers replaced)."""
    return _hook().render((DOCS / "configuration.md").read_text())


def test_configuration_page_lists_every_field_with_its_description():
    page = _page()
    assert "<!-- greenlight:" not in page
    hook = _hook()
    for section, model in _models():
        assert f"### `[{section}]`" in page
        for key, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{key} has no description"
            row = next((line for line in page.splitlines()
                        if line.startswith(f"| `{section}.{key}` |")), None)
            assert row is not None, f"{section}.{key} is missing from the configuration page"
            assert hook._cell(info.description.strip()) in row
            assert hook.type_name(info.annotation).split(" ")[0] in row


def test_settings_sections_are_every_model_of_params():
    """A new model in flows/params.py must be a settings section too, or it is undocumented."""
    from pydantic import BaseModel as Base

    from flows import params

    models = {name for name, value in vars(params).items()
              if isinstance(value, type) and issubclass(value, Base)
              and value not in (Base, params.Section)}  # Section: their base
    assert models == {model.__name__ for _, model in _models()}


def test_a_field_without_a_description_fails_the_page():
    class Bare(BaseModel):
        described: int = Field(1, description="Has one.")
        silent: float = 0.5

    with pytest.raises(ValueError, match=r"Bare\.silent: no description"):
        _hook().model_rows("bare", Bare)


def test_every_flow_parameter_has_a_note_and_none_is_stale():
    hook = _hook()
    names = [name for name, _, _ in hook.cycle_parameters()]
    assert set(names) == set(hook.FLOW_PARAMETER_NOTES)
    page = _page()
    for name in names:
        assert f"| `{name}` |" in page


def test_policies_table_is_what_route_does():
    from flows.policies import Policy, route

    table = _hook().render_policies()
    for policy in typing.get_args(Policy):
        row = next(line for line in table.splitlines() if line.startswith(f"| `{policy}` |"))
        assert row.count("promote") == sum(route(policy, v) == "promote"
                                           for v in _hook().VERDICTS)


def test_readme_does_not_repeat_parameter_descriptions():
    """The README links to the generated page instead of copying the descriptions."""
    readme = (ROOT / "README.md").read_text()
    for section, model in _models():
        for key, info in model.model_fields.items():
            assert f"`{section}.{key}` |" not in readme, f"{section}.{key} is tabled by hand"
            assert info.description[:60] not in readme


def _anchors(path: Path) -> set[str]:
    from markdown.extensions.toc import slugify

    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slugify(re.sub(r"[`*]", "", m.group(1)).strip(), "-")
            for m in re.finditer(r"^#{1,6} (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("source", ["README.md", "expectations/README.md"])
def test_links_from_the_readmes_into_docs_resolve(source):
    path = ROOT / source
    links = re.findall(r"\]\(((?:\.\./)?docs/[^)#]+)(?:#([^)]+))?\)", path.read_text())
    assert links, f"{source} links to no docs page"
    for target, anchor in links:
        page = (path.parent / target).resolve()
        assert page.is_file(), f"{source}: {target} does not exist"
        if anchor:
            assert anchor in _anchors(page), f"{source}: {target}#{anchor} has no such heading"


def test_mkdocs_build_strict(tmp_path):
    """What .ci/run runs: no warning (broken link, missing anchor, page outside the nav)."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    html = (tmp_path / "site" / "configuration" / "index.html").read_text()
    for section, model in _models():
        for key in model.model_fields:
            assert f"{section}.{key}" in html
