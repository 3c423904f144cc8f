#!/usr/bin/env bash
# Installs what this project needs on a fresh Debian 12 (or Ubuntu) machine: the Vulkan loader and headers, the
# shader compiler and validator, libpng, libjpeg-turbo, OpenSSL's libcrypto, libcurl (for the static build), lavapipe
# (Mesa's Vulkan device on the CPU) and the Khronos validation layer.
# Safe to run again: it installs only what is missing. The Swift toolchain itself (6.0 or later) must already be there.
set -euo pipefail

packages=(
    libvulkan-dev            # Vulkan loader and headers (pkg-config vulkan)
    glslang-tools            # glslangValidator: GLSL -> SPIR-V at build time
    spirv-tools              # spirv-val: checks every compiled kernel
    libpng-dev               # PNG decoding (pkg-config libpng)
    libjpeg62-turbo-dev      # JPEG decoding with libjpeg-turbo, as PIL decodes (pkg-config libjpeg)
    libssl-dev               # SHA-256 of the weights, with OpenSSL's libcrypto (pkg-config libcrypto)
    libcurl4-openssl-dev     # what --static-swift-stdlib links FoundationNetworking against (-lcurl)
    mesa-vulkan-drivers      # lavapipe: a Vulkan device on the CPU, for machines without a GPU and for CI
    vulkan-validationlayers  # VK_LAYER_KHRONOS_validation, on in every test
    pkg-config
)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all system packages are installed."
else
    if ! command -v apt-get >/dev/null; then
        echo "setup: this script uses apt-get; install these by other means: ${missing[*]}" >&2
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "setup: run as root (or install sudo) to install: ${missing[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "setup: done."
fi

command -v swift >/dev/null || { echo "setup: no 'swift' on PATH; install Swift 6.0 or later from swift.org." >&2; exit 1; }
