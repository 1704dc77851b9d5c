"""The typed runtime configuration: one pydantic schema, ``RuntimeDescriptor``.

Every section has defaults, so an empty file (or none) is a valid configuration.
Field descriptions double as the comments of ``coral-runtime config init`` and as
the configuration reference in the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from coral_inference.config.backend_options import validate_backend_options


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- backends


class OnnxRuntimeOptions(Section):
    enabled: bool = Field(default=True, description="Offer ONNX Runtime as a backend.")
    providers: list[Literal["tensorrt", "cuda", "cpu"]] = Field(
        default_factory=lambda: ["cpu"],
        description="Execution providers in order of preference; CPU is always the last resort.",
        examples=[["cuda", "cpu"]],
    )
    intra_op_num_threads: int = Field(
        default=0, ge=0, description="Threads inside one operator (0: ONNX Runtime's default)."
    )
    inter_op_num_threads: int = Field(
        default=0, ge=0, description="Threads across operators (0: ONNX Runtime's default)."
    )
    allow_spinning: bool | None = Field(
        default=None,
        description=(
            "Idle threads of the operator pool spin waiting for work: faster for a model "
            "alone, CPU taken from everything else on the same cores. Default: off in pipeline "
            "workers (they share the cores with their decoder, encoder and other pipelines), "
            "ONNX Runtime's own default (on) elsewhere."
        ),
    )
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        default="all", description="Graph optimisation level."
    )
    tensorrt_cache_dir: Path | None = Field(
        default=None, description="Where TensorRT engines are cached (TensorRT provider only)."
    )


class RknnOptions(Section):
    enabled: bool = Field(
        default=True, description="Offer the Rockchip NPU (RKNN Lite) as a backend."
    )
    core_mask: Literal["auto", "0", "1", "2", "0_1", "0_1_2", "all"] = Field(
        default="auto",
        description="NPU cores for a single session; the pool below spreads sessions over cores.",
    )
    pool_size: int = Field(
        default=3, ge=1, le=16, description="Sessions per model (RK3588 has three NPU cores)."
    )
    pool_cores: list[Literal["0", "1", "2"]] = Field(
        default_factory=lambda: ["0", "1", "2"],
        description="Cores the pool assigns to its sessions, round robin.",
    )


class BackendsConfig(Section):
    order: list[str] = Field(
        default_factory=lambda: ["rknn", "onnxruntime"],
        description="Preference order when a model asks for backend 'auto'.",
    )
    onnxruntime: OnnxRuntimeOptions = Field(default_factory=OnnxRuntimeOptions)
    rknn: RknnOptions = Field(default_factory=RknnOptions)
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Options of third-party backends, by backend name; a backend that declares an "
            "options model has its section checked here (see docs/new-backend.md)."
        ),
    )
    disabled: list[str] = Field(
        default_factory=list, description="Backend names not to register at all."
    )

    @model_validator(mode="after")
    def _typed_backend_options(self) -> BackendsConfig:
        if self.options:
            reserved = [n for n, f in type(self).model_fields.items() if n != "options"]
            checked = validate_backend_options(
                self.options, reserved=reserved, disabled=self.disabled
            )
            if checked != self.options:
                # Bypass validate_assignment: it would run this validator again.
                object.__setattr__(self, "options", checked)
        return self


# --------------------------------------------------------------------------- models


class ModelEntry(Section):
    package: Path = Field(
        default=..., description="Directory of a Coral model package (holds coral-model.yaml)."
    )
    backend: str = Field(default="auto", description="Backend name or 'auto'.")


# --------------------------------------------------------------------------- plugins


class PluginsConfig(Section):
    entry_points: bool = Field(
        default=True, description="Discover third-party backends, patches and web plugins."
    )
    disabled: list[str] = Field(
        default_factory=list,
        description="Entry point names to skip (e.g. a misbehaving third-party plugin).",
    )
    workflows: list[str] = Field(
        default_factory=lambda: ["coral_workflows"],
        description="Workflows plugin modules (the WORKFLOWS_PLUGINS list) Coral runs with.",
    )


# --------------------------------------------------------------------------- storage & metrics


class StorageConfig(Section):
    root: Path = Field(
        default=Path("var/coral"), description="Base directory for Coral's own data."
    )
    recordings: Path = Field(
        default=Path("var/coral/recordings"),
        description="Recordings root: every recorder writes inside it.",
    )
    results: Path = Field(
        default=Path("var/coral/results"), description="Pipeline results directory."
    )


class RetentionConfig(Section):
    max_age_hours: float | None = Field(
        default=168.0,
        gt=0,
        description="Delete recordings older than this (None: keep regardless of age).",
    )
    max_gb: float | None = Field(
        default=None,
        gt=0,
        description="Keep a recordings folder under this size, oldest deleted first.",
    )
    min_free_gb: float | None = Field(
        default=1.0,
        ge=0,
        description="Delete the oldest recordings while the disk has less free space.",
    )
    interval_s: float = Field(
        default=30.0, gt=0, description="How often the retention thread checks."
    )


class RecordingConfig(Section):
    """Defaults of the video recorder block; each block may override them."""

    segment_seconds: float = Field(default=60.0, gt=0, description="Length of continuous segments.")
    codec: Literal["h264", "mpeg4"] = Field(
        default="h264",
        description="h264 (libx264, browser-playable) or mpeg4 (fallback, not for browsers).",
    )
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = Field(
        default="veryfast",
        description="libx264 speed preset: faster presets cost less CPU and more disk.",
    )
    crf: int = Field(
        default=23, ge=0, le=51, description="Constant rate factor: lower is better quality."
    )
    keyframe_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between keyframes: the most a killed process can lose.",
    )
    threads: int = Field(default=0, ge=0, description="Encoder threads (0: libx264 decides).")
    queue_frames: int = Field(
        default=64,
        ge=1,
        description="Frames waiting for the encoder; beyond it frames are dropped and counted.",
    )
    idle_close_s: float = Field(
        default=5.0,
        gt=0,
        description="Finish the open files of a source that sent no frame for this long.",
    )
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


class InfluxSinkConfig(Section):
    type: Literal["influxdb"] = "influxdb"
    url: str = Field(
        default=..., description="InfluxDB v2 base URL.", examples=["http://127.0.0.1:8086"]
    )
    org: str = Field(default="coral", description="Organisation.")
    bucket: str = Field(default="coral", description="Bucket.")
    token: str = Field(default="", description="API token (empty for servers without auth).")
    batch_size: int = Field(default=500, ge=1, description="Points per write.")
    flush_interval_s: float = Field(
        default=1.0, gt=0, description="Longest wait before a partial batch."
    )
    max_queue: int = Field(
        default=10000, ge=1, description="Points held in memory before spooling."
    )
    spool_dir: Path | None = Field(
        default=None,
        description="Disk spool kept while the server is down (default under storage.root).",
    )
    max_spool_bytes: int = Field(default=64 * 1024 * 1024, ge=0, description="Spool size limit.")
    timeout_s: float = Field(default=5.0, gt=0, description="HTTP timeout of one write.")
    retry_initial_s: float = Field(
        default=1.0, gt=0, description="First wait after a failed write."
    )
    retry_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait between retries (doubling)."
    )


class PrometheusSinkConfig(Section):
    type: Literal["prometheus"] = "prometheus"
    port: int | None = Field(
        default=None, description="Serve /metrics on this port (None: only through the web app)."
    )
    host: str = Field(default="127.0.0.1", description="Bind address of the standalone exporter.")


class JsonLinesSinkConfig(Section):
    type: Literal["jsonl"] = "jsonl"
    path: Path | None = Field(
        default=None, description="File to append to (None: standard output)."
    )


SinkConfig = Annotated[
    InfluxSinkConfig | PrometheusSinkConfig | JsonLinesSinkConfig, Field(discriminator="type")
]


class MetricsConfig(Section):
    sinks: dict[str, SinkConfig] = Field(
        default_factory=lambda: {"prometheus": PrometheusSinkConfig()},
        description="Named metric sinks; blocks and services address them by name.",
    )
    pipeline_metrics: bool = Field(
        default=True, description="Report fps, latency, drops and detections of every pipeline."
    )


# --------------------------------------------------------------------------- services


class HttpConfig(Section):
    host: str = Field(default="127.0.0.1", description="Bind address of the web control plane.")
    port: int = Field(default=9100, ge=1, le=65535, description="Port of the web control plane.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Allowed CORS origins ('*' is refused with credentials)."
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest request body.")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host names the control plane answers to besides IP addresses, localhost and this "
            "machine's hostname; any other Host header is refused (DNS rebinding). '*.example.org' "
            "matches subdomains; '*' turns the check off (only behind a proxy that checks Host)."
        ),
        examples=[["coral-box.lan", "coral.example.org"]],
    )


class PipelinesConfig(Section):
    database: Path = Field(
        default=Path("var/coral/pipelines.sqlite3"),
        description="SQLite file holding pipeline state.",
    )
    workflows_root: Path = Field(
        default=Path("examples"),
        description="Workflow files are loaded from inside this directory only.",
    )
    videos_dir: Path = Field(default=Path("var/coral/videos"), description="Downloaded videos.")
    restore_on_start: bool = Field(
        default=True, description="Restart persisted pipelines at start."
    )
    max_pipelines: int = Field(default=8, ge=1, description="Pipelines running at once.")
    download_timeout_s: float = Field(
        default=60.0, gt=0, description="Deadline for one whole download attempt of a remote video."
    )
    max_concurrent_downloads: int = Field(
        default=2, ge=1, description="Remote videos downloaded at once."
    )
    sources_roots: list[Path] = Field(
        default_factory=list,
        description=(
            "Local video files are accepted only inside these folders (and videos_dir); "
            "empty: videos_dir only."
        ),
        examples=[["/srv/videos"]],
    )
    devices: list[int | str] = Field(
        default_factory=list,
        description="Cameras pipelines may open: indexes and /dev/video* paths (empty: none).",
        examples=[[0, "/dev/video2"]],
    )
    stream_schemes: list[str] = Field(
        default_factory=lambda: ["rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt"],
        description=(
            "URL schemes live sources may use; tcp is off by default (tcp://...?listen=1 would "
            "open a listening socket) and listening options are refused for every scheme."
        ),
    )
    allowed_redirect_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts an http(s) source may redirect to (empty: redirects are not followed).",
        examples=[["cdn.example.org"]],
    )
    download_retries: int = Field(default=3, ge=0, description="Retries for a remote video.")
    download_max_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Largest remote video accepted."
    )
    # Pipeline workers (issue 11): one supervised process per pipeline of the web app.
    isolation: Literal["process", "thread"] = Field(
        default="process",
        description=(
            "'process': every pipeline of the web app runs in its own supervised worker process "
            "(crash isolation, all CPU cores); 'thread': inside the web process (no isolation)."
        ),
    )
    restart: Literal["never", "on-failure", "always"] = Field(
        default="on-failure",
        description=(
            "What the supervisor does when a worker ends without being asked to: 'on-failure' "
            "restarts crashed or hung workers, 'always' also workers whose source ended."
        ),
    )
    restart_backoff_s: float = Field(
        default=1.0,
        gt=0,
        description="Wait before the first restart; doubled per restart in a row.",
    )
    restart_backoff_max_s: float = Field(
        default=60.0, gt=0, description="Longest wait between restarts."
    )
    restart_max_per_hour: int = Field(
        default=10,
        ge=0,
        description="Restarts of one pipeline per hour; past it the pipeline stays failed.",
    )
    restart_backoff_reset_s: float = Field(
        default=300.0,
        ge=0,
        description=(
            "A worker that ran healthy this long before it failed is restarted after "
            "restart_backoff_s again, not after the grown backoff."
        ),
    )
    heartbeat_timeout_s: float = Field(
        default=15.0, gt=0, description="A worker that reports nothing for this long is hung."
    )
    stall_timeout_s: float = Field(
        default=60.0,
        ge=0,
        description="A running worker that delivers no frame for this long is hung (0: never).",
    )
    start_timeout_s: float = Field(
        default=180.0,
        gt=0,
        description="Longest wait for a worker to compile and start its workflow.",
    )
    stop_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for a worker to stop before it is killed."
    )
    reconnect_backoff_max_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait between attempts to open a source that is down.",
    )
    preview_max_bytes: int = Field(
        default=1920 * 1080 * 3,
        ge=3,
        description="Shared-memory preview slot per pipeline; larger frames are scaled down.",
    )
    worker_session: bool = Field(
        default=True,
        description=(
            "Each worker in its own session: where the kernel schedules by session (autogroup), "
            "the web process keeps its CPU share against a pipeline's many threads."
        ),
    )
    control_plane_cpus: list[Annotated[int, Field(ge=0, le=1023)]] | None = Field(
        default=None,
        min_length=1,
        description=(
            "CPU cores reserved for the web process (API, dashboard, WebRTC hub): it runs only "
            "there and pipeline workers run on the other cores, so a pipeline keeps its frame "
            "rate and the API its latency when both are busy (isolation: process only)."
        ),
        examples=[[0], [0, 1, 2, 3]],
    )
    cpu_affinity: list[Annotated[int, Field(ge=0, le=1023)]] | None = Field(
        default=None,
        min_length=1,
        description=(
            "CPU cores of workers whose pipeline names none (default: every core, or those "
            "control_plane_cpus leaves). A worker on N cores runs ONNX Runtime with N threads "
            "unless backends.onnxruntime.intra_op_num_threads is set."
        ),
        examples=[[4, 5, 6, 7]],
    )
    npu_core_masks: list[Literal["0", "1", "2", "0_1", "0_1_2"]] = Field(
        default_factory=lambda: ["0", "1", "2"],
        description=(
            "RKNN core masks handed to workers round robin, so pipelines spread over the "
            "RK3588's NPU cores (a pipeline's own npu_core_mask wins)."
        ),
    )

    @model_validator(mode="after")
    def _control_plane_needs_workers(self) -> PipelinesConfig:
        if self.control_plane_cpus and self.isolation == "thread":
            raise ValueError(
                "control_plane_cpus needs isolation: process (with 'thread' the pipelines run "
                "inside the web process and would be pinned with it); remove one of the two"
            )
        return self


class IceServer(Section):
    urls: list[str] = Field(default=..., examples=[["stun:stun.example.org:3478"]])
    username: str | None = None
    credential: str | None = None


class StreamsConfig(Section):
    ice_servers: list[IceServer] = Field(
        default_factory=list,
        description="STUN/TURN servers offered to viewers (none by default: nothing leaves the LAN).",
    )
    max_peers: int = Field(default=16, ge=1, description="Viewers across all channels.")
    offer_timeout_s: float = Field(default=10.0, gt=0, description="Time to answer a WebRTC offer.")
    snapshot_timeout_s: float = Field(
        default=5.0, gt=0, description="Time to grab a camera snapshot."
    )
    peer_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A viewer that sends no RTCP receiver report for this long is closed and freed.",
    )
    host_addresses: list[str] = Field(
        default_factory=list,
        description=(
            "Local addresses offered as ICE host candidates (empty: every interface). Pin one LAN "
            "interface, or use ['127.0.0.1'] for a viewer on the same machine."
        ),
        examples=[["192.168.1.20"]],
    )


class MonitoringConfig(Section):
    enabled: bool = Field(default=True, description="Collect host and pipeline metrics.")
    poll_interval_s: float = Field(default=5.0, gt=0, description="Host metrics period.")
    disk_quota_bytes: int | None = Field(
        default=None, ge=0, description="Cleanup keeps recordings and results under this size."
    )
    min_free_bytes: int = Field(
        default=1024**3, ge=0, description="Cleanup keeps at least this much disk free."
    )
    sinks: list[str] = Field(
        default_factory=lambda: ["prometheus"],
        description="Names from metrics.sinks that host metrics go to.",
    )


class HealthConfig(Section):
    readiness_checks: list[str] = Field(
        default_factory=lambda: ["database", "pipelines", "monitor"],
        description="Components /readyz aggregates.",
    )


class UiConfig(Section):
    mode: Literal["default", "none", "plugin"] = Field(
        default="default", description="Dashboard served by the web app."
    )
    plugin: str | None = Field(
        default=None, description="Web plugin serving the UI when mode=plugin."
    )


class AuthConfig(Section):
    enabled: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="auto: keys for mutating routes, and for all routes when bound beyond loopback.",
    )
    api_key_hashes: list[str] = Field(
        default_factory=list,
        description="sha256 hex digests of accepted API keys (keys are never stored in clear).",
    )
    header: str = Field(default="X-API-Key", description="Header carrying the key.")
    session_ttl_s: float = Field(
        default=12 * 3600.0,
        gt=0,
        description="A browser session ends this long after it was opened.",
    )
    max_failed_logins: int = Field(
        default=10, ge=1, description="Wrong keys accepted from one client per minute; then 429."
    )

    @field_validator("api_key_hashes")
    @classmethod
    def _hex_digests(cls, value: list[str]) -> list[str]:
        for digest in value:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(
                    f"{digest!r} is not a sha256 hex digest; "
                    "make one with: coral-runtime web hash-key"
                )
        return value


class ServicesConfig(Section):
    http: HttpConfig = Field(default_factory=HttpConfig)
    pipelines: PipelinesConfig = Field(default_factory=PipelinesConfig)
    streams: StreamsConfig = Field(default_factory=StreamsConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    ui: UiConfig = Field(default_factory=UiConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)


# --------------------------------------------------------------------------- root


class RuntimeDescriptor(Section):
    """Everything Coral's runtime, blocks, CLI and web app read."""

    platform: Literal["auto", "rockchip", "jetson", "cpu"] = Field(
        default="auto", description="Hardware platform; 'auto' detects it from /proc and /etc."
    )
    backends: BackendsConfig = Field(default_factory=BackendsConfig)
    models: dict[str, ModelEntry] = Field(
        default_factory=dict, description="Model packages by name (blocks refer to these names)."
    )
    patches: dict[str, bool] = Field(
        default_factory=dict,
        description="Turn patches on (true) or off (false) by name; unlisted ones use their default.",
    )
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    services: ServicesConfig = Field(default_factory=ServicesConfig)
