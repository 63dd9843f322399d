"""Build configuration beyond pyproject.toml: the optional C accelerators.

`mltrail._native` speeds up sealing and verifying events (RFC 8785 encoding, SHA-256, the
Merkle frontier) and `mltrail.catalog._records` prediction batches. Both are optional:
without a compiler or OpenSSL's headers the build skips them and mltrail runs their
pure-Python twins, which the tests hold byte-equal.
"""

from setuptools import Extension, setup


def optional_extension(name: str, source: str) -> Extension:
    return Extension(
        name,
        [source],
        depends=["src/mltrail/_shared.h"],
        libraries=["crypto"],  # OpenSSL's SHA-256
        extra_compile_args=["-O2", "-Wall"],
        optional=True,
    )


EXTENSIONS = [
    optional_extension("mltrail._native", "src/mltrail/_native.c"),
    optional_extension("mltrail.catalog._records", "src/mltrail/catalog/_records.c"),
]

setup(ext_modules=EXTENSIONS)
