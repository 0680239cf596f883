"""``registry.storage`` and ``registry.cache``: where blobs live (filesystem or S3) and the shared
blob-descriptor cache (an in-memory one per replica, or redis).

S3 keys are distribution's own (``storage.s3.*``), so its documentation applies; 2.8 and 3.x differ
in path style (2.8 infers it from ``regionendpoint``, 3.x needs ``forcepathstyle``) and in redis's
``addr`` vs ``addrs`` — the template renders each version's form. Keys and passwords are secret
references: they reach the registry only in its 0600 ``config.yml``, never its environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regdeploy.materials.secrets import SecretRef, secret_ref
from regdeploy.spec import validate as v
from regdeploy.spec.run import SIDECAR_RUN, RunSpec, parse_run

STORAGE_KEYS = ("delete", "readonly", "s3", "redirect")
_S3_KEYS = (
    "bucket",
    "region",
    "regionendpoint",
    "accesskey",
    "secretkey",
    "rootdirectory",
    "secure",
    "v4auth",
    "chunksize",
    "forcepathstyle",
    "skipverify",
    "encrypt",
    "storageclass",
)
_S3_STORAGE_CLASSES = ("STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "INTELLIGENT_TIERING", "NONE")
MIN_CHUNK = 5 * 1024 * 1024  # S3's smallest multipart part
REDIS_PORT = 6379
REDIS_IMAGE = "redis:7"


@dataclass(frozen=True)
class S3Spec:
    bucket: str
    region: str
    accesskey: SecretRef
    secretkey: SecretRef
    regionendpoint: str | None = None  # None: AWS
    rootdirectory: str = ""
    secure: bool = True
    v4auth: bool = True
    chunksize: int | None = None
    forcepathstyle: bool | None = None  # None: true with a regionendpoint (3.x only; 2.8 infers it)
    skipverify: bool = False
    encrypt: bool = False
    storageclass: str | None = None

    @property
    def describe(self) -> str:
        """Safe to print: where the bucket is, never a key."""
        where = self.regionendpoint or f"AWS {self.region}"
        return f"s3://{self.bucket}{self.rootdirectory} at {where}"


@dataclass(frozen=True)
class RedisSpec:
    """``registry.cache.redis``: a redis unit on *deploy_on*, or an existing server at *addr*."""

    deploy_on: str | None = None
    addr: str | None = None  # host:port; for a deployed one, set when the cluster is resolved
    password: SecretRef | None = None  # deployed: generated per cluster when omitted
    db: int = 0
    port: int = REDIS_PORT  # deployed: the port it is published on
    image: str = REDIS_IMAGE
    run: RunSpec = SIDECAR_RUN

    @property
    def deployed(self) -> bool:
        return self.deploy_on is not None


@dataclass(frozen=True)
class StorageSpec:
    s3: S3Spec | None = None
    redirect: bool = False  # true: blob GETs answer 307 to S3 (clients must reach it)

    @property
    def kind(self) -> str:
        return "filesystem" if self.s3 is None else "s3"

    @property
    def shared(self) -> bool:
        """Whether replicas on several hosts can share it."""
        return self.s3 is not None

    def describe(self, data_dir: str) -> str:
        return f"filesystem {data_dir}" if self.s3 is None else self.s3.describe


def parse_storage(data: Any, where: v.Where) -> StorageSpec:
    """The storage keys beyond ``delete``/``readonly`` (parsed by the caller) of ``registry.storage``."""
    storage = v.mapping(data, where, STORAGE_KEYS)
    s3 = None if storage.get("s3") is None else _s3(storage["s3"], where.child("s3"))
    redirect = v.boolean(storage.get("redirect", False), where.child("redirect"))
    if redirect and s3 is None:
        where.child("redirect").fail(
            "is only used with storage.s3 (a filesystem registry serves blobs itself)"
        )
    return StorageSpec(s3=s3, redirect=redirect)


def _s3(raw: Any, where: v.Where) -> S3Spec:
    data = v.mapping(raw, where, _S3_KEYS)
    for key in ("bucket", "region"):
        if data.get(key) is None:
            where.child(key).fail(
                "is required for S3 storage"
                + (" (the bucket blobs go to)" if key == "bucket" else " (e.g. us-east-1)")
            )
    bucket = v.string(
        data["bucket"],
        where.child("bucket"),
        r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
        "3-63 lowercase letters, digits, '.' or '-' (S3's bucket names)",
    )
    endpoint = None
    if data.get("regionendpoint") is not None:
        endpoint = v.string(
            data["regionendpoint"],
            where.child("regionendpoint"),
            r"https?://[^\s/]+/?",
            "expected http(s)://HOST[:PORT]",
        ).rstrip("/")
    root = ""
    if data.get("rootdirectory") is not None:
        root = v.absolute_path(data["rootdirectory"], where.child("rootdirectory")).rstrip("/")
    chunk = None
    if data.get("chunksize") is not None:
        chunk = v.integer(data["chunksize"], where.child("chunksize"), MIN_CHUNK, 5 * 1024**3)
    for key in ("accesskey", "secretkey"):
        if data.get(key) is None:
            # distribution falls back to the host's AWS credentials (instance roles); regdeploy never
            # reads the control machine's, and a unit's environment is empty: say what to write.
            where.child(key).fail("is required: {env: VARIABLE} or {file: PATH}")
    storageclass = None
    if data.get("storageclass") is not None:
        storageclass = v.choice(data["storageclass"], where.child("storageclass"), _S3_STORAGE_CLASSES)
    return S3Spec(
        bucket=bucket,
        region=v.string(data["region"], where.child("region"), r"[a-z0-9-]+", "e.g. us-east-1"),
        accesskey=secret_ref(data["accesskey"], where.child("accesskey"), None),
        secretkey=secret_ref(data["secretkey"], where.child("secretkey"), None),
        regionendpoint=endpoint,
        rootdirectory=root,
        secure=v.boolean(data.get("secure", True), where.child("secure")),
        v4auth=v.boolean(data.get("v4auth", True), where.child("v4auth")),
        chunksize=chunk,
        forcepathstyle=(
            None
            if data.get("forcepathstyle") is None
            else v.boolean(data["forcepathstyle"], where.child("forcepathstyle"))
        ),
        skipverify=v.boolean(data.get("skipverify", False), where.child("skipverify")),
        encrypt=v.boolean(data.get("encrypt", False), where.child("encrypt")),
        storageclass=storageclass,
    )


def parse_cache(raw: Any, where: v.Where) -> RedisSpec | None:
    """``registry.cache``: ``{redis: {deploy_on: HOST}}`` or ``{redis: {addr, password, db}}``."""
    data = v.mapping(raw, where, ("redis",))
    if data.get("redis") is None:
        return None
    w = where.child("redis")
    redis = v.mapping(data["redis"], w, ("deploy_on", "addr", "password", "db", "port", "image", "run"))
    deploy_on = redis.get("deploy_on")
    addr = redis.get("addr")
    if deploy_on is not None and addr is not None:
        w.fail("has both deploy_on (a redis regdeploy runs) and addr (an existing one): choose one")
    if deploy_on is None and addr is None:
        w.fail("needs deploy_on: HOST (regdeploy runs redis there) or addr: HOST:PORT (an existing redis)")
    if addr is not None:
        for key in ("port", "image", "run"):
            if redis.get(key) is not None:
                w.child(key).fail("is only used with deploy_on (for a redis regdeploy runs)")
        addr = v.string(
            addr, w.child("addr"), r"[^\s:/]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}", "expected HOST:PORT"
        )
    return RedisSpec(
        deploy_on=None if deploy_on is None else v.string(deploy_on, w.child("deploy_on")),
        addr=addr,
        password=None
        if redis.get("password") is None
        else secret_ref(redis["password"], w.child("password"), None),
        db=v.integer(redis.get("db", 0), w.child("db"), 0, 15),
        port=v.port(redis.get("port", REDIS_PORT), w.child("port")),
        image=v.string(
            redis.get("image", REDIS_IMAGE), w.child("image"), v.IMAGE_RE, "expected an image reference"
        ),
        run=parse_run(redis.get("run"), w.child("run"), SIDECAR_RUN),
    )
