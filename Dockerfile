# Rampart: a static binary in a minimal image, running as a non-root user.
#
#   docker build -t rampart .   (or: make image)
#   docker run -p 8080:8080 -p 8443:8443 -v $PWD/rampart.yaml:/etc/rampart/rampart.yaml rampart
#
# Mount your config at /etc/rampart/rampart.yaml. Ports are those of your config; the examples use 8080 (HTTP), 8443 (HTTPS)
# and 9901 (admin, which the HEALTHCHECK below asks; keep it on loopback
# unless you protect it with admin.token).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# With Coraza patched as make builds it (waf/corazapatch/README.md).
RUN bash waf/corazapatch/prepare.sh /tmp/build && \
	CGO_ENABLED=0 go build -modfile=/tmp/build/rampart.mod -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/rampart ./cmd/rampart && \
	/out/rampart version | grep -q "coraza v.* patched"

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rampart /usr/local/bin/rampart
USER nonroot:nonroot
EXPOSE 8080 8443 9901
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/usr/local/bin/rampart", "healthcheck", "--config", "/etc/rampart/rampart.yaml"]
ENTRYPOINT ["/usr/local/bin/rampart"]
CMD ["run", "--config", "/etc/rampart/rampart.yaml"]
