"""Properties of environment fingerprints and code versions (hypothesis)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mltrail.canonical import MAX_SAFE_INTEGER
from mltrail.capture import CodeVersion, Environment, Lockfile

text = st.text(min_size=1, max_size=20)
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(
    lambda name: "--" not in name
)
versions = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}(\+[a-z0-9]{1,5})?", fullmatch=True)
packages = st.dictionaries(names, versions, max_size=15).map(
    lambda found: [f"{name}=={version}" for name, version in found.items()]
)
lockfiles = st.dictionaries(st.sampled_from(["uv.lock", "poetry.lock", "pylock.toml"]), hex64)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
extra_fields = st.dictionaries(st.text(min_size=1).map(lambda key: "x-" + key), json_values)


@st.composite
def environments(draw: st.DrawFn) -> Environment:
    optional = st.none() | text
    return Environment(
        python_version=draw(text),
        python_implementation=draw(st.sampled_from(["CPython", "PyPy"])),
        system=draw(st.sampled_from(["linux", "darwin", "win32"])),
        machine=draw(text),
        libc=draw(optional),
        packages=draw(packages),
        lockfiles=[Lockfile(name, digest) for name, digest in draw(lockfiles).items()],
        image_digest=draw(st.none() | hex64.map(lambda hex_: "sha256:" + hex_)),
        gpu=draw(st.none() | st.lists(text, min_size=1, max_size=4)),
        gpu_driver=draw(optional),
        cuda=draw(optional),
        cudnn=draw(optional),
        unrecognized_fields=draw(extra_fields),
    )


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys (and nothing else) reordered."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {key: shuffled(value[key], rng) for key in keys}
    if isinstance(value, list):
        return [shuffled(item, rng) for item in value]
    return value


@given(environments())
def test_environment_round_trips(env: Environment) -> None:
    assert Environment.from_dict(env.to_dict()) == env
    assert Environment.from_dict(env.to_dict()).to_dict() == env.to_dict()


@given(environments(), st.randoms(use_true_random=False))
def test_digest_is_stable_under_key_order(env: Environment, rng: random.Random) -> None:
    reordered = shuffled(env.to_dict(), rng)
    assert Environment.from_dict(reordered).digest == env.digest
    assert env.environment_id == "sha256:" + env.digest


@given(environments(), st.permutations(range(15)))
def test_package_order_does_not_matter(env: Environment, order: list[int]) -> None:
    listed = list(env.packages)
    permuted = [listed[i] for i in order if i < len(listed)]
    data = {**env.to_dict(), "packages": permuted}
    assert Environment.from_dict(data).digest == env.digest


@given(
    repository=text,
    commit=st.text("0123456789abcdef", min_size=7, max_size=64),
    branch=st.none() | text,
    diff=st.none() | hex64,
    extra=extra_fields,
)
def test_code_version_round_trips(
    repository: str, commit: str, branch: str | None, diff: str | None, extra: dict[str, Any]
) -> None:
    code = CodeVersion(
        repository, commit, branch, diff is not None, diff, "git", unrecognized_fields=extra
    )
    assert CodeVersion.from_dict(code.to_dict()) == code
