"""Photos read back from the store Scrapy's media pipeline wrote them to (`cumpair.stored_images`).

Each store is written by Scrapy's own files store (or with the bucket/prefix/path it computes)
and read through our reader: the file system for real, FTP against a real pyftpdlib server,
S3 against moto's S3 server over HTTP (skipped where moto is not installed).
"""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from scrapy.pipelines.files import FilesPipeline, FSFilesStore
from scrapy.settings import Settings

from captcha_server.redis_runner import free_port
from cumpair.stored_images import (
    ImageStoreError,
    ImageStoreOptions,
    StoredImageError,
    image_store_uri,
    open_image_store,
    read_photos,
)
from tests.ftp_fixtures import ftp_server as serve_ftp

PHOTO = b"\x89PNG\r\n\x1a\n not really a png, bytes are bytes"
RESULT_PATH = "full/0a1b2c.jpg"  # the `path` of an ImagesPipeline result


def _scrapy_settings(**values: object) -> Settings:
    settings = Settings()
    settings.setmodule("cumpair_scraper.settings", priority="project")
    settings.update(values)
    return settings


@pytest.mark.parametrize("form", ["absolute", "file-uri"])
def test_a_file_system_store_reads_what_scrapys_fs_store_wrote(tmp_path, form):
    uri = str(tmp_path / "imgs") if form == "absolute" else f"file://{tmp_path / 'imgs'}"
    FSFilesStore(uri).persist_file(RESULT_PATH, io.BytesIO(PHOTO), info=None)
    store = open_image_store(uri)
    assert store.read(RESULT_PATH) == PHOTO
    assert store.reference(RESULT_PATH) == str(tmp_path / "imgs" / "full" / "0a1b2c.jpg")


def test_a_relative_store_is_read_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    FSFilesStore("data/images").persist_file(RESULT_PATH, io.BytesIO(PHOTO), info=None)
    assert open_image_store("data/images").read(RESULT_PATH) == PHOTO


def test_a_missing_photo_is_an_os_error_naming_it_and_the_others_are_still_read(tmp_path):
    FSFilesStore(str(tmp_path)).persist_file(RESULT_PATH, io.BytesIO(PHOTO), info=None)
    store = open_image_store(tmp_path)
    with pytest.raises(StoredImageError, match=r"gone\.jpg") as caught:
        store.read("full/gone.jpg")
    assert isinstance(caught.value, OSError)
    read, errors = read_photos(store, ["full/gone.jpg", RESULT_PATH])
    assert read == [(1, PHOTO)] and list(errors) == [0]


def test_the_store_is_images_store_or_the_images_folder_of_the_data_dir(tmp_path):
    assert image_store_uri(_scrapy_settings(INDEX_DATA_DIR=str(tmp_path))) == str(
        tmp_path / "images"
    )
    assert image_store_uri(_scrapy_settings(IMAGES_STORE="s3://b/p/")) == "s3://b/p/"


def test_options_come_from_scrapys_setting_names():
    options = ImageStoreOptions.from_settings(
        _scrapy_settings(
            AWS_ENDPOINT_URL="http://minio:9000",
            AWS_USE_SSL="false",
            AWS_VERIFY="/etc/ca.pem",
            FTP_USER="crawler",
            FEED_STORAGE_FTP_ACTIVE="1",
        )
    )
    assert options.aws_endpoint_url == "http://minio:9000"
    assert options.aws_use_ssl is False and options.aws_verify == "/etc/ca.pem"
    assert (options.ftp_user, options.ftp_password, options.ftp_active) == ("crawler", "guest", 1)
    assert ImageStoreOptions.from_settings({"AWS_VERIFY": "false"}).aws_verify is False
    with pytest.raises(ValueError, match="AWS_USE_SSL"):
        ImageStoreOptions.from_settings({"AWS_USE_SSL": "maybe"})


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("sftp://host/dir", "no reader for scheme 'sftp'"),
        ("s3://bucket-without-prefix", "expected s3://bucket/prefix"),
        ("ftp:///no-host", "expected ftp://host"),
    ],
)
def test_a_store_that_cannot_be_read_is_a_clear_error(uri, message):
    with pytest.raises(ImageStoreError, match=message):
        open_image_store(uri)


def test_a_scheme_whose_client_library_is_missing_says_which_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_google(name, *args, **kwargs):
        if name.startswith("google"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_google)
    with pytest.raises(ImageStoreError, match="needs the google-cloud-storage package"):
        open_image_store("gs://bucket/images/")


@pytest.fixture
def ftp_server(tmp_path):
    """A real FTP server on a free port (user crawler/secret), its root in tmp_path."""
    with serve_ftp(tmp_path / "ftproot") as port:
        yield port, tmp_path / "ftproot"


@pytest.mark.slow
@pytest.mark.integration
def test_an_ftp_store_reads_what_scrapys_ftp_store_wrote(ftp_server):
    from scrapy.pipelines.files import FTPFilesStore
    from scrapy.utils.ftp import ftp_store_file

    port, root = ftp_server
    settings = _scrapy_settings(FTP_USER="crawler", FTP_PASSWORD="secret")
    FilesPipeline._update_stores(settings)
    uri = f"ftp://127.0.0.1:{port}/shop/images"
    writer = FTPFilesStore(uri)
    # FTPFilesStore.persist_file, less its Deferred: the same call with the same arguments
    ftp_store_file(path=f"{writer.basedir}/{RESULT_PATH}", file=io.BytesIO(PHOTO),
                   host=writer.host, port=writer.port, username=writer.username,
                   password=writer.password)  # fmt: skip
    assert (root / "shop" / "images" / "full" / "0a1b2c.jpg").read_bytes() == PHOTO

    store = open_image_store(uri, ImageStoreOptions.from_settings(settings))
    assert store.read(RESULT_PATH) == PHOTO
    assert store.reference(RESULT_PATH) == f"ftp://127.0.0.1:{port}/shop/images/{RESULT_PATH}"
    with pytest.raises(StoredImageError, match=r"gone\.jpg"):
        store.read("full/gone.jpg")
    # credentials in the URI win over FTP_USER/FTP_PASSWORD, as in Scrapy
    wrong = ImageStoreOptions(ftp_user="nobody", ftp_password="nothing")
    in_uri = f"ftp://crawler:secret@127.0.0.1:{port}/shop/images"
    assert open_image_store(in_uri, wrong).read(RESULT_PATH) == PHOTO
    with pytest.raises(StoredImageError, match=r"530|[Ll]ogin"):
        open_image_store(uri, wrong).read(RESULT_PATH)


@pytest.mark.slow
@pytest.mark.integration
def test_an_s3_store_reads_the_key_scrapys_s3_store_writes():
    """Against moto's S3 server over HTTP: Scrapy's S3FilesStore computes bucket and key, our
    reader finds the object there with the same AWS_* settings."""
    moto_server = pytest.importorskip("moto.server")
    from scrapy.pipelines.files import S3FilesStore

    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        settings = _scrapy_settings(
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            AWS_REGION_NAME="us-east-1",
        )
        FilesPipeline._update_stores(settings)
        writer = S3FilesStore("s3://photos/crawl/")
        writer.s3_client.create_bucket(Bucket="photos")
        # S3FilesStore.persist_file, less its Deferred: its key is prefix + path
        writer.s3_client.put_object(
            Bucket=writer.bucket, Key=f"{writer.prefix}{RESULT_PATH}", Body=PHOTO
        )
        store = open_image_store("s3://photos/crawl/", ImageStoreOptions.from_settings(settings))
        assert store.read(RESULT_PATH) == PHOTO
        assert store.reference(RESULT_PATH) == f"s3://photos/crawl/{RESULT_PATH}"
        with pytest.raises(StoredImageError, match=r"NoSuchKey|Not Found|404"):
            store.read("full/gone.jpg")
    finally:
        server.stop()


def test_reader_paths_join_like_scrapys_fs_store(tmp_path: Path):
    """The same basedir/parts join as FSFilesStore._get_filesystem_path, for nested paths."""
    scrapy_store = FSFilesStore(f"file://{tmp_path}")
    ours = open_image_store(f"file://{tmp_path}")
    nested = "thumbs/small/0a1b.jpg"
    assert ours.reference(nested) == str(scrapy_store._get_filesystem_path(nested))


@pytest.mark.slow
@pytest.mark.integration
def test_the_index_pipeline_embeds_photos_from_an_ftp_images_store(tmp_path):
    """IMAGES_STORE=ftp://...: the index pipeline reads each photo back from the FTP server
    (there is no local copy) and the record keeps the photo's FTP reference."""
    from PIL import Image
    from scrapy.utils.test import get_crawler

    from cumpair.index import ProductStore
    from cumpair_scraper.pipelines.index import IndexPipeline

    root = tmp_path / "ftproot"
    (root / "images" / "full").mkdir(parents=True)
    jpeg = io.BytesIO()
    Image.new("RGB", (96, 96), (30, 160, 40)).save(jpeg, "JPEG")
    (root / "images" / "full" / "green.jpg").write_bytes(jpeg.getvalue())
    with serve_ftp(root) as port:
        uri = f"ftp://127.0.0.1:{port}/images"
        settings = dict(_scrapy_settings(
            INDEX_DATA_DIR=str(tmp_path / "data"), IMAGES_STORE=uri, FTP_USER="crawler",
            FTP_PASSWORD="secret", EMBED_ENCODERS="offline", EMBED_BACKEND="torch",
            EMBED_THREADS=1, EMBED_MAX_WAIT=0.01, TWISTED_REACTOR_ENABLED=False,
        ))  # fmt: skip
        crawler = get_crawler(settings_dict=settings)
        pipeline = IndexPipeline.from_crawler(crawler)
        photos = [{"url": "https://northwind.example/g.jpg", "path": "full/green.jpg"},
                  {"url": "https://northwind.example/x.jpg", "path": "full/gone.jpg"}]  # fmt: skip
        item = {"shop": "northwind", "url": "https://northwind.example/p/1", "title": "Widget",
                "price": Decimal("9.99"), "currency": "EUR", "images": photos}  # fmt: skip
        pipeline._index(item)
        pipeline.spider_closed()
        assert crawler.stats.get_value("index/image_errors") == 1
    with ProductStore.open(tmp_path / "data", readonly=True) as store:
        (record,) = store.get_offers([1]).values()
        assert record.image_paths == (f"{uri}/full/green.jpg", f"{uri}/full/gone.jpg")
        assert store.count("image") == 1  # the photo on the server; the missing one has none
