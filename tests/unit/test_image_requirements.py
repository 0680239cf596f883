"""image.requirements: Requires-Dist lines, PEP 508 markers and the run-time dependency closure."""

from __future__ import annotations

import pytest

from regdeploy.errors import ImageError
from regdeploy.image.requirements import (
    canonical_name,
    evaluate_marker,
    marker_environment,
    parse_requirement,
    requirement_closure,
)

LINUX_311 = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.7",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_release": "6.1.0-18-amd64",
    "platform_system": "Linux",
    "platform_version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
    "python_full_version": "3.11.7",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
    "sys_platform": "linux",
    "extra": "",
}

@pytest.mark.parametrize(
    ("text", "name", "extras", "marker"),
    [
        ("click>=8.1", "click", set(), None),
        ("charset_normalizer<4,>=2", "charset-normalizer", set(), None),
        ('PySocks!=1.5.7,>=1.5.6; extra == "socks"', "pysocks", set(), 'extra == "socks"'),
        ("docker[ssh, Websockets] >=7 ; python_version >= '3.9'", "docker", {"ssh", "websockets"}, None),
        ('ruff >= 0.16.0 ; extra == "all"', "ruff", set(), 'extra == "all"'),
        ("pip @ https://example.invalid/pip.whl", "pip", set(), None),
        ("Zope.Interface", "zope-interface", set(), None),
    ],
)
def test_parse_requirement(text, name, extras, marker):
    req = parse_requirement(text)
    assert req.name == name
    assert req.extras == frozenset(extras)
    if marker is not None:
        assert req.marker == marker
    assert req.text == text.strip()


def test_parse_requirement_rejects_garbage():
    with pytest.raises(ImageError, match="cannot parse the requirement"):
        parse_requirement(">=1.0")


def test_canonical_name():
    assert canonical_name("Charset_Normalizer") == "charset-normalizer"
    assert canonical_name("zope..interface") == "zope-interface"


MARKERS = [
    ("platform_python_implementation != 'PyPy'", True),
    ('implementation_name != "PyPy"', True),
    ("python_full_version < '3.11'", False),
    ("python_full_version >= '3.11'", True),
    ("python_version < '3.14'", True),
    ("python_version >= '3.9'", True),
    ("python_version > '3.11'", False),
    ("python_version == '3.11.*'", True),
    ("python_version != '3.1.*'", True),
    ("python_full_version ~= '3.11.2'", True),
    ("python_full_version ~= '3.12.0'", False),
    ("python_version ~= '3.9'", True),
    ("sys_platform == 'win32'", False),
    ('platform_system == "Windows"', False),
    ("os_name == 'posix' and sys_platform == 'linux'", True),
    ("sys_platform == 'win32' or sys_platform == 'linux'", True),
    ("platform_python_implementation != 'PyPy' and python_version < '3.9'", False),
    ("(platform_python_implementation == 'CPython') and extra == 'brotli'", False),
    ("(python_version < '3.14') and extra == 'zstd'", False),
    ("extra == 'test'", False),
    ("'linux' in sys_platform", True),
    ("'win' not in sys_platform", True),
    ("platform_machine in 'x86_64 AMD64'", True),
    ("python_version == '3.11' and (sys_platform == 'darwin' or os_name == 'posix')", True),
]


@pytest.mark.parametrize(("marker", "expected"), MARKERS)
def test_evaluate_marker(marker, expected):
    assert evaluate_marker(marker, LINUX_311) is expected


@pytest.mark.parametrize(("marker", "expected"), MARKERS)
def test_evaluate_marker_agrees_with_packaging(marker, expected):
    markers = pytest.importorskip("packaging.markers")
    assert markers.Marker(marker).evaluate(dict(LINUX_311)) is evaluate_marker(marker, LINUX_311)


def test_extra_markers_compare_normalised_names():
    env = {**LINUX_311, "extra": "use-chardet-on-py3"}
    assert evaluate_marker('extra == "use_chardet_on_py3"', env)
    assert evaluate_marker("extra == 'Use.Chardet-On_Py3'", env)


def test_prerelease_interpreters_sort_before_the_release():
    env = {**LINUX_311, "python_full_version": "3.12.0rc1", "python_version": "3.12"}
    assert evaluate_marker("python_full_version < '3.12'", env)
    assert evaluate_marker("python_version >= '3.12'", env)


def test_non_versions_compare_as_strings_as_pep_508_says():
    # packaging answers False here (it gives up on a non-PEP 440 value); PEP 508 falls back to Python's `>=`.
    assert evaluate_marker("platform_release >= '6'", LINUX_311)
    assert not evaluate_marker("platform_release < '6'", LINUX_311)


def test_legacy_dotted_names():
    assert evaluate_marker("os.name == 'posix' and sys.platform == 'linux'", LINUX_311)


@pytest.mark.parametrize(
    ("marker", "why"),
    [
        ("python_version >", "ends too early"),
        ("python_version >= '3' garbage", "unexpected"),
        ("nonsense == '1'", "unknown variable"),
        ("(python_version >= '3'", "ends too early"),
        ("(python_version >= '3' os_name", "not closed"),
        ("python_version ! '3'", "unexpected"),
        ("os_name ~= 'posix'", "needs versions"),
    ],
)
def test_bad_markers_say_why(marker, why):
    with pytest.raises(ImageError, match=why) as info:
        evaluate_marker(marker, LINUX_311)
    assert marker in str(info.value)


def _requires(table):
    return lambda name: table.get(name)


def test_closure_follows_requirements_and_skips_what_does_not_apply():
    table = {
        "root": ["a>=1", "b[x]", "pytest; extra == 'test'", "pywin32; sys_platform == 'win32'"],
        "a": ["c", "B"],
        "b": ["d; extra == 'x'", "e; extra == 'y'"],
        "c": [],
        "d": ["a"],
    }
    assert requirement_closure("root", _requires(table), LINUX_311) == ["root", "a", "b", "c", "d"]


def test_closure_revisits_a_distribution_when_more_extras_are_asked():
    table = {
        "root": ["a", "b"],
        "a": ["b"],
        "b": ["x; extra == 'more'"],
        "x": [],
    }
    assert "x" not in requirement_closure("root", _requires(table), LINUX_311)
    table["a"] = ["b[more]"]
    assert requirement_closure("root", _requires(table), LINUX_311) == ["root", "a", "b", "x"]


def test_closure_names_a_missing_distribution_and_who_needs_it():
    table = {"root": ["a"], "a": ["gone>=2"]}
    with pytest.raises(ImageError, match=r"distribution gone \(required by a\).*not installed"):
        requirement_closure("root", _requires(table), LINUX_311)
    with pytest.raises(ImageError, match="distribution root: it is not installed"):
        requirement_closure("root", _requires({}), LINUX_311)


def test_closure_of_the_real_regdeploy():
    import importlib.metadata

    def requires_of(name):
        try:
            return importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            return None

    names = requirement_closure("regdeploy", requires_of, marker_environment())
    for needed in (
        "click",
        "jinja2",
        "markupsafe",
        "pyyaml",
        "cryptography",
        "cffi",
        "pycparser",
        "paramiko",
        "bcrypt",
        "pynacl",
        "invoke",
        "docker",
        "requests",
        "urllib3",
        "idna",
        "certifi",
        "charset-normalizer",
    ):
        assert needed in names
    for test_only in ("pytest", "ruff", "mypy", "ansible-core", "molecule", "pywin32", "colorama"):
        assert test_only not in names
