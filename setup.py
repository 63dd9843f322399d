"""Build configuration beyond pyproject.toml: the optional C accelerator.

`mltrail._native` speeds up sealing events (RFC 8785 encoding, SHA-256, the Merkle
frontier). It is optional: without a compiler or OpenSSL's headers the build skips it and
mltrail runs its pure-Python twin, which the tests hold byte-equal.
"""

from setuptools import Extension, setup

EXTENSIONS = [
    Extension(
        "mltrail._native",
        ["src/mltrail/_native.c"],
        libraries=["crypto"],
        extra_compile_args=["-O2", "-Wall", "-Wno-deprecated-declarations"],
        optional=True,
    ),
    Extension(
        "mltrail.catalog._records",
        ["src/mltrail/catalog/_records.c"],
        libraries=["crypto"],
        extra_compile_args=["-O2", "-Wall", "-Wno-deprecated-declarations"],
        optional=True,
    ),
]

setup(ext_modules=EXTENSIONS)
