# exit137-exporter: the static binary alone, on an empty image (no base image to pull).
#
# Build: scripts/build-image (or `make image`) compiles the binary on the host and
# builds from a context that holds only it. By hand, from the repo root:
#   CGO_ENABLED=0 go build -trimpath -o exit137-exporter ./cmd/exit137-exporter
#   docker build -t exit137-exporter .        # .dockerignore sends only the binary
#
# The image runs as nobody (65534). What each evidence source needs from the host:
#   docker    the socket, and its group: --group-add "$(stat -c %g /var/run/docker.sock)"
#   cgroupfs  -v /sys/fs/cgroup:/host/sys/fs/cgroup:ro --cgroup.root=/host/sys/fs/cgroup
#   disk      -v /var/lib/docker:/var/lib/docker:ro (Docker's data root, by its host path)
#   kmsg      --device /dev/kmsg, and CAP_SYSLOG where kernel.dmesg_restrict=1 (Debian's and
#             Ubuntu's default); Docker gives added capabilities to root only
#   sigtrace  uid 0, which owns the tracefs files (no capability is needed to make a trace
#             instance; CAP_SYS_ADMIN only to mount tracefs):
#             -v /sys/kernel/tracing:/host/sys/kernel/tracing --tracefs.path=/host/sys/kernel/tracing
#             (not under /sys, where AppArmor's docker-default profile denies writes)
#   systemd   -v /run/dbus/system_bus_socket:/var/run/dbus/system_bus_socket:ro
#   all       --pid host --cgroupns host: kernel records and traces name host pids, looked up
#             in /proc (or mount the host's /proc and pass --path.procfs=/host/proc)
#
# Every source, as root with every capability but CAP_SYSLOG dropped (one command):
#   docker run -d --name exit137-exporter -p 127.0.0.1:9137:9137 --read-only
#     --pid host --cgroupns host --user 0 --cap-drop ALL --cap-add SYSLOG --device /dev/kmsg
#     -v /var/run/docker.sock:/var/run/docker.sock:ro
#     -v /sys/fs/cgroup:/host/sys/fs/cgroup:ro -v /var/lib/docker:/var/lib/docker:ro
#     -v /sys/kernel/tracing:/host/sys/kernel/tracing
#     -v /run/dbus/system_bus_socket:/var/run/dbus/system_bus_socket:ro
#     exit137-exporter --cgroup.root=/host/sys/fs/cgroup --tracefs.path=/host/sys/kernel/tracing
# Non-root (no sigtrace; no kmsg where dmesg_restrict=1): instead of --user 0 ... --device,
#   --group-add "$(stat -c %g /var/run/docker.sock)", no tracefs mount, and the flags
#   --no-sigtrace.enable --kmsg.path= so that no source stays down and alerts.
# e2e/image_test.go builds this image and runs it both ways; docs/deploy.md has the rest.
FROM scratch
LABEL org.opencontainers.image.title="exit137-exporter" \
      org.opencontainers.image.description="Why containers die with exit code 137" \
      org.opencontainers.image.source="https://github.com/exit137-exporter/exit137-exporter"
COPY exit137-exporter /exit137-exporter
# --state.path's default directory, writable by the default user; a volume,
# so that the ledger of counted exits outlives the container.
COPY --chown=65534:65534 state /var/lib/exit137-exporter
VOLUME /var/lib/exit137-exporter
USER 65534:65534
EXPOSE 9137
ENTRYPOINT ["/exit137-exporter"]
