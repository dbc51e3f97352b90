# Shortcuts: every target is a script in scripts/, which says what it does.
.PHONY: build image test demo

build: ## the static binary ./exit137-exporter
	scripts/build

image: ## the exit137-exporter:latest image, FROM scratch, nothing pulled
	scripts/build-image

test: ## every test (installs what is missing, starts dockerd if none answers)
	scripts/test

demo: ## exporter + Prometheus + Alertmanager on loopback, an OOM kill and a manual kill
	scripts/demo
