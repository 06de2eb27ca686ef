from setuptools import find_packages, setup

setup(
    name="s3proxy",
    version="0.1.0",
    description="An S3-compatible REST gateway daemon on Twisted with pluggable storage",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["s3proxy", "s3proxy.*"]) + ["twisted.plugins"],
    package_data={"twisted.plugins": ["s3proxy_plugin.py"]},
    include_package_data=True,
    install_requires=[
        "twisted>=24.7",
        "klein>=24.8",
        "treq>=24.9",
        "lxml>=5.0",
        "zope.interface>=6.0",
        "awscrt>=0.20",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-twisted>=1.14",
            "boto3>=1.36",
            "awscli>=1.36",
            "boto==2.49.0",
            "filechunkio",
            "requests",
            "ruff",
            "mypy",
            "mypy-zope",
            "lxml-stubs",
            "types-requests",
            "moto[server]>=5.0",
        ],
    },
    entry_points={"console_scripts": []},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3.11",
    ],
)
