"""Read back the photos Scrapy's media pipelines stored, from wherever IMAGES_STORE points.

Scrapy's files stores (`scrapy.pipelines.files`: FSFilesStore, S3FilesStore, GCSFilesStore,
FTPFilesStore) write and stat files but cannot read them. `open_image_store` maps the same URI
schemes the same way (a path or ``file://``, ``s3://bucket/prefix``, ``gs://bucket/prefix``,
``ftp://[user:pass@]host[:port]/dir``) with the client libraries Scrapy uses (botocore,
google-cloud-storage, ftplib), imported only when their scheme is used. Object keys are
Scrapy's: the URI's prefix followed by the image result's ``path``, byte for byte. Never imports
Scrapy: the pipelines and `cumpair indexer` read through it alike.
"""

from __future__ import annotations

import ftplib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from cumpair.flags import parse_flag

#: Where the crawl's photos go unless IMAGES_STORE says otherwise (relative to INDEX_DATA_DIR).
DEFAULT_SUBDIR = "images"


class ImageStoreError(Exception):
    """An IMAGES_STORE that cannot be read: an unknown scheme, a malformed URI, or the client
    library its scheme needs is not installed."""


class StoredImageError(ImageStoreError, OSError):
    """One stored photo could not be read (missing, or the store did not answer). An OSError,
    so the stages that skip an unreadable photo skip this one too."""


@dataclass(frozen=True)
class ImageStoreOptions:
    """The credentials and endpoints of Scrapy's stores, under Scrapy's setting names.

    None leaves a value to the client library (botocore's and google-cloud's own environment
    and config files). FTP credentials in the URI win over `ftp_user`/`ftp_password`, as in
    Scrapy; `ftp_active` is FEED_STORAGE_FTP_ACTIVE.
    """

    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    aws_endpoint_url: str | None = None
    aws_region_name: str | None = None
    aws_use_ssl: bool | None = None
    aws_verify: bool | str | None = None
    gcs_project_id: str | None = None
    ftp_user: str = "anonymous"
    ftp_password: str = "guest"
    ftp_active: bool = False
    timeout_s: float = 30.0  # FTP connect and read timeout

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ImageStoreOptions:
        """The options of Scrapy settings, or of any mapping with the same names (the
        indexer passes the environment): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
        AWS_SESSION_TOKEN, AWS_ENDPOINT_URL, AWS_REGION_NAME, AWS_USE_SSL, AWS_VERIFY,
        GCS_PROJECT_ID, FTP_USER, FTP_PASSWORD, FEED_STORAGE_FTP_ACTIVE."""

        def text(name: str) -> str | None:
            value = settings.get(name)
            return None if value in (None, "") else str(value)

        verify = settings.get("AWS_VERIFY")  # a boolean, or the path of a CA bundle
        if isinstance(verify, str) and parse_flag(verify) is None:
            verify = verify or None
        else:
            verify = _flag("AWS_VERIFY", verify)
        return cls(
            aws_access_key_id=text("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=text("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=text("AWS_SESSION_TOKEN"),
            aws_endpoint_url=text("AWS_ENDPOINT_URL"),
            aws_region_name=text("AWS_REGION_NAME"),
            aws_use_ssl=_flag("AWS_USE_SSL", settings.get("AWS_USE_SSL")),
            aws_verify=verify,
            gcs_project_id=text("GCS_PROJECT_ID"),
            ftp_user=text("FTP_USER") or cls.ftp_user,
            ftp_password=text("FTP_PASSWORD") or cls.ftp_password,
            ftp_active=bool(
                _flag("FEED_STORAGE_FTP_ACTIVE", settings.get("FEED_STORAGE_FTP_ACTIVE"))
            ),
        )


def _flag(name: str, value: Any) -> bool | None:
    """A boolean setting given typed or as text; None when unset."""
    if value in (None, ""):
        return None
    flag = parse_flag(value)
    if flag is not None:
        return flag
    raise ValueError(f"setting {name} is not a boolean: {value!r}")


class ImageStore(Protocol):
    """Where one crawl's photos are: `read` a result's ``path`` back; `reference` is the text
    an offer record keeps for it (a local path, or the object's URI without credentials)."""

    uri: str

    def read(self, path: str) -> bytes: ...

    def reference(self, path: str) -> str: ...


def image_store_uri(settings: Mapping[str, Any]) -> str:
    """IMAGES_STORE as set, else ``<INDEX_DATA_DIR>/images`` (where the crawl puts photos)."""
    return str(settings.get("IMAGES_STORE") or Path(settings["INDEX_DATA_DIR"]) / DEFAULT_SUBDIR)


def image_store_from_settings(settings: Mapping[str, Any]) -> ImageStore:
    """The reader of the crawl's IMAGES_STORE (`image_store_uri`), with the store settings of
    `ImageStoreOptions.from_settings`: what the pipelines after the images pipeline read."""
    return open_image_store(image_store_uri(settings), ImageStoreOptions.from_settings(settings))


def open_image_store(uri: str | Path, options: ImageStoreOptions | None = None) -> ImageStore:
    """The reader for `uri`, chosen as Scrapy's FilesPipeline chooses the writer: an absolute
    path or no scheme is the file system, else by scheme. Raises `ImageStoreError`."""
    uri = str(uri)
    options = options or ImageStoreOptions()
    scheme = "file" if Path(uri).is_absolute() else urlparse(uri).scheme
    if scheme in ("", "file"):
        return FileImageStore(uri)
    if scheme == "s3":
        return S3ImageStore(uri, options)
    if scheme == "gs":
        return GCSImageStore(uri, options)
    if scheme == "ftp":
        return FTPImageStore(uri, options)
    raise ImageStoreError(f"IMAGES_STORE {uri!r}: no reader for scheme {scheme!r} "
                          "(file paths, file://, s3://, gs:// and ftp:// are read)")  # fmt: skip


def read_photos(
    store: ImageStore, paths: list[str]
) -> tuple[list[tuple[int, bytes]], dict[int, StoredImageError]]:
    """Each of `paths` read from `store`: (position, bytes) of those read, and why the others
    were not (position -> error). One failure never stops the rest."""
    read: list[tuple[int, bytes]] = []
    errors: dict[int, StoredImageError] = {}
    for position, path in enumerate(paths):
        try:
            read.append((position, store.read(path)))
        except StoredImageError as exc:
            errors[position] = exc
    return read, errors


class FileImageStore:
    """FSFilesStore's layout: the base directory (a ``file://`` URI loses its scheme), then
    the result path's ``/``-separated parts."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.basedir = Path(uri.split("://", 1)[1] if "://" in uri else uri)

    def _path(self, path: str) -> Path:
        return Path(self.basedir, *path.split("/"))

    def read(self, path: str) -> bytes:
        try:
            return self._path(path).read_bytes()
        except OSError as exc:
            raise StoredImageError(f"{self._path(path)}: {exc.strerror or exc}") from exc

    def reference(self, path: str) -> str:
        return str(self._path(path))


def _bucket_and_prefix(uri: str, scheme: str) -> tuple[str, str]:
    """Scrapy's split of ``scheme://bucket/prefix``; the key is prefix + path, unjoined."""
    rest = uri[len(scheme) + 3 :]
    if "/" not in rest or not rest.split("/", 1)[0]:
        raise ImageStoreError(f"IMAGES_STORE {uri!r}: expected {scheme}://bucket/prefix")
    bucket, prefix = rest.split("/", 1)
    return bucket, prefix


def _missing_library(uri: str, package: str) -> ImageStoreError:
    return ImageStoreError(f"IMAGES_STORE {uri!r} needs the {package} package, which is not "
                           f"installed (pip install {package})")  # fmt: skip


class S3ImageStore:
    """S3FilesStore's client (a botocore session with the AWS_* settings) and keys."""

    def __init__(self, uri: str, options: ImageStoreOptions) -> None:
        try:
            import botocore.session
        except ImportError:
            raise _missing_library(uri, "botocore") from None
        self.uri = uri
        self.bucket, self.prefix = _bucket_and_prefix(uri, "s3")
        self.client = botocore.session.get_session().create_client(
            "s3",
            aws_access_key_id=options.aws_access_key_id,
            aws_secret_access_key=options.aws_secret_access_key,
            aws_session_token=options.aws_session_token,
            endpoint_url=options.aws_endpoint_url,
            region_name=options.aws_region_name,
            use_ssl=True if options.aws_use_ssl is None else options.aws_use_ssl,
            verify=options.aws_verify,
        )

    def read(self, path: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.prefix + path
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=key)
            with reply["Body"] as body:
                return body.read()
        except (BotoCoreError, ClientError) as exc:
            raise StoredImageError(f"s3://{self.bucket}/{key}: {exc}") from exc

    def reference(self, path: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{path}"


class GCSImageStore:
    """GCSFilesStore's client (google-cloud-storage, project GCS_PROJECT_ID) and blob names."""

    def __init__(self, uri: str, options: ImageStoreOptions) -> None:
        try:
            from google.cloud import storage
        except ImportError:
            raise _missing_library(uri, "google-cloud-storage") from None
        self.uri = uri
        bucket, self.prefix = _bucket_and_prefix(uri, "gs")
        self.bucket = storage.Client(project=options.gcs_project_id).bucket(bucket)

    def read(self, path: str) -> bytes:
        from google.api_core.exceptions import GoogleAPIError

        name = self.prefix + path
        try:
            return self.bucket.blob(name).download_as_bytes()
        except GoogleAPIError as exc:
            raise StoredImageError(f"gs://{self.bucket.name}/{name}: {exc}") from exc

    def reference(self, path: str) -> str:
        return f"gs://{self.bucket.name}/{self.prefix}{path}"


class FTPImageStore:
    """FTPFilesStore's server, credentials and paths (``<dir>/<path>``); one connection per
    read, as Scrapy stores each file, so readers in several threads never share one."""

    def __init__(self, uri: str, options: ImageStoreOptions) -> None:
        parsed = urlparse(uri)
        if not parsed.hostname:
            raise ImageStoreError(f"IMAGES_STORE {uri!r}: expected ftp://host[:port]/dir")
        self.uri = uri
        self.host = parsed.hostname
        self.port = parsed.port or 21
        self.username = parsed.username or options.ftp_user
        self.password = parsed.password or options.ftp_password
        self.basedir = parsed.path.rstrip("/")
        self.active = options.ftp_active
        self.timeout_s = options.timeout_s

    def read(self, path: str) -> bytes:
        remote = f"{self.basedir}/{path}"
        buffer = io.BytesIO()
        try:
            with ftplib.FTP(timeout=self.timeout_s) as ftp:
                ftp.connect(self.host, self.port)
                ftp.login(self.username, self.password)
                if self.active:
                    ftp.set_pasv(False)
                ftp.retrbinary(f"RETR {remote}", buffer.write)
        except (ftplib.Error, OSError, EOFError) as exc:
            raise StoredImageError(f"{self.reference(path)}: {exc}") from exc
        return buffer.getvalue()

    def reference(self, path: str) -> str:
        return f"ftp://{self.host}:{self.port}{self.basedir}/{path}"


__all__ = [
    "DEFAULT_SUBDIR",
    "FTPImageStore",
    "FileImageStore",
    "GCSImageStore",
    "ImageStore",
    "ImageStoreError",
    "ImageStoreOptions",
    "S3ImageStore",
    "StoredImageError",
    "image_store_from_settings",
    "image_store_uri",
    "open_image_store",
    "read_photos",
]
