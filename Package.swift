// swift-tools-version: 6.0
// BossNet-T on Vulkan: a GPU inference engine for hybrid CNN-transformer classifiers.

import PackageDescription

let package = Package(
    name: "BossNetVulkan",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "bossnet", targets: ["bossnet"]),
        .library(name: "VulkanCompute", targets: ["VulkanCompute"]),
        .library(name: "Kernels", targets: ["Kernels"]),
        .library(name: "NetworkGraph", targets: ["NetworkGraph"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Checkpoint", targets: ["Checkpoint"]),
        .library(name: "PublishedWeights", targets: ["PublishedWeights"]),
        .library(name: "Images", targets: ["Images"]),
        .library(name: "Evaluation", targets: ["Evaluation"]),
        .library(name: "Benchmark", targets: ["Benchmark"]),
        .library(name: "Training", targets: ["Training"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
    ],
    targets: [
        // C libraries, found through pkg-config.
        .systemLibrary(
            name: "CVulkan",
            pkgConfig: "vulkan",
            providers: [.apt(["libvulkan-dev"]), .brew(["vulkan-loader", "vulkan-headers"])]
        ),
        .systemLibrary(
            name: "CPNG",
            pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"]), .brew(["libpng"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),
        .systemLibrary(
            name: "CJPEG",
            pkgConfig: "libjpeg",
            providers: [.apt(["libjpeg62-turbo-dev"]), .brew(["jpeg-turbo"])]
        ),

        // Swift over Vulkan compute: no neural-network knowledge in here.
        .target(name: "VulkanCompute", dependencies: ["CVulkan"]),

        // The SPIR-V kernels (compiled from Shaders/ at build time and embedded) and their Swift launch descriptions.
        .target(
            name: "Kernels",
            dependencies: ["VulkanCompute"],
            plugins: [.plugin(name: "CompileShaders")]
        ),

        // The graph IR, memory planner and executors (Vulkan and the CPU reference); knows no particular network.
        .target(name: "NetworkGraph", dependencies: ["Kernels", "VulkanCompute"]),

        // The BossNet-T family and the MBConv space: architectures, PyTorch parameter names, counting, graph building,
        // binding a checkpoint's tensors to a model by name.
        .target(name: "Models", dependencies: ["NetworkGraph", "Kernels", "Checkpoint"]),

        // Weights files: .pth and safetensors reading and writing, and the SHA-256 of weights (OpenSSL's libcrypto).
        .target(name: "Checkpoint", dependencies: ["ZIPFoundation", "COpenSSL"]),

        // The authors' published checkpoints by model name: downloaded once (resumably), checked, cached.
        .target(name: "PublishedWeights", dependencies: ["Checkpoint", "Models"]),

        // PNG decoding through libpng, in C so that libpng's longjmp error path never crosses Swift frames.
        .target(name: "PNGDecoder", dependencies: ["CPNG"]),

        // JPEG decoding through libjpeg-turbo, in C for the same reason (libjpeg's errors longjmp).
        .target(name: "JPEGDecoder", dependencies: ["CJPEG"]),

        // Images in: PNG and JPEG decoding, the evaluation preprocessing (PIL-exact bicubic resize), NumPy .npy.
        // Images out: PNG through libpng's simplified API (its errors are returned, never longjmp'd).
        .target(name: "Images", dependencies: ["PNGDecoder", "JPEGDecoder", "CPNG"]),

        // Labelled image sets: listing, sharding, the decode-and-classify pipeline, accuracy, predictions files.
        // The ImageNet class names are a text resource embedded in the binary.
        .target(
            name: "Evaluation", dependencies: ["Images", "Models", "NetworkGraph", "VulkanCompute"],
            resources: [.embedInCode("Resources/imagenet_classes.txt")]),

        // Training runs: the authors' recipe (augmentation, mixup, schedule, model average), checkpoints in their
        // layout, validation and logs.
        .target(
            name: "Training",
            dependencies: ["Models", "NetworkGraph", "Kernels", "Images", "Evaluation", "Checkpoint", "VulkanCompute"]),

        // Steptime measurement: the benchmark's cases, timing, statistics and report.
        .target(name: "Benchmark", dependencies: ["Models", "NetworkGraph", "Kernels", "VulkanCompute"]),

        // The command-line tool.
        .executableTarget(
            name: "bossnet",
            dependencies: [
                "VulkanCompute", "Kernels", "NetworkGraph", "Models", "Benchmark", "Checkpoint", "PublishedWeights",
                "Images",
                "Evaluation", "Training",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Build tools: the plugin that turns Shaders/*.comp into embedded SPIR-V, and the program it runs.
        .plugin(
            name: "CompileShaders",
            capability: .buildTool(),
            dependencies: ["ShaderEmbed"],
            path: "Tools/CompileShaders"
        ),
        .executableTarget(name: "ShaderEmbed", path: "Tools/ShaderEmbed"),

        // Fuzz targets for the parsers (Tools/fuzz.sh builds them with libFuzzer; plainly built, a corpus replayer).
        .executableTarget(
            name: "bossnet-fuzz", dependencies: ["Checkpoint", "Images", "Models"], path: "Tools/Fuzz",
            exclude: ["Corpus", "lsan.supp"]),

        // Tests: one target per module, sharing the validated-device helper and the tolerances in TestSupport.
        .target(name: "TestSupport", dependencies: ["VulkanCompute"], path: "Tests/TestSupport"),
        .testTarget(name: "VulkanComputeTests", dependencies: ["VulkanCompute", "Kernels", "TestSupport", "CVulkan"]),
        .testTarget(
            name: "KernelsTests", dependencies: ["Kernels", "VulkanCompute", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(
            name: "NetworkGraphTests", dependencies: ["NetworkGraph", "Kernels", "VulkanCompute", "TestSupport"]),
        .testTarget(name: "BenchmarkTests", dependencies: ["Benchmark", "Models", "VulkanCompute", "TestSupport"]),
        .testTarget(
            name: "ModelsTests",
            dependencies: ["Models", "NetworkGraph", "Kernels", "VulkanCompute", "Images", "TestSupport"],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "CheckpointTests", dependencies: ["Checkpoint", "Kernels", "Models", "NetworkGraph"],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "PublishedWeightsTests", dependencies: ["PublishedWeights", "Checkpoint", "Models", "TestSupport"],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "TrainingTests",
            dependencies: ["Training", "Models", "Kernels", "Images", "Checkpoint", "VulkanCompute", "TestSupport"],
            exclude: ["Fixtures"]),
        .testTarget(name: "ImagesTests", dependencies: ["Images", "Kernels"], exclude: ["Fixtures"]),
        .testTarget(
            name: "EvaluationTests",
            dependencies: [
                "Evaluation", "Models", "NetworkGraph", "VulkanCompute", "Images",
                "Checkpoint", "Benchmark", "Kernels", "TestSupport",
            ],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "CommandLineTests",
            dependencies: [
                "bossnet", "Images", "Models", "Checkpoint", "Kernels", "NetworkGraph", "TestSupport",
            ]),
    ],
    swiftLanguageModes: [.v6]
)
