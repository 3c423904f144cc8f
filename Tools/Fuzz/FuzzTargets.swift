import Checkpoint
import Foundation
import Images
import Models

// Fuzz targets for everything that reads bytes from strangers. Each takes arbitrary bytes and must return (an error
// is fine) without crashing, hanging or leaking. Tools/fuzz.sh builds this with libFuzzer and AddressSanitizer
// (-sanitize=fuzzer,address, -DFUZZING) and picks the target with BOSSNET_FUZZ_TARGET; built plainly, it replays
// files through a target instead (`bossnet-fuzz TARGET FILE...`).

/// The targets by name.
let fuzzTargets: [String: @Sendable (Data) -> Void] = [
    // The .pth reader as the tools use it, from a file: the zip container and the pickle machine together, then the
    // tensors. (ZIPFoundation's in-memory archives trap on a seek past the end, so the file path is what is fuzzed.)
    "pth": { data in
        guard (try? data.write(to: scratchFile)) != nil else { return }
        _ = try? TorchCheckpoint.stateDict(at: scratchFile)
    },
    // The pickle machine alone.
    "pickle": { data in _ = try? Unpickler.load([UInt8](data)) },
    "safetensors": { data in _ = try? SafeTensors.read(data: data) },
    "npy": { data in _ = (try? NumPyArray(data: data))?.firstNonFinite },
    // Decoding, then the evaluation preprocessing of what decodes (small images only, to keep the fuzzer fast).
    "png": { data in if let image = try? RGBImage(png: data) { preprocess(image) } },
    "jpeg": { data in if let image = try? RGBImage(jpeg: data) { preprocess(image) } },
    // The --arch parser, and the model it describes (its state-dict names, at the smallest input: a shapes-only
    // build, no values, so even the largest architecture the parser accepts builds in milliseconds).
    "arch": { data in
        guard let architecture = try? Architecture.parse(String(decoding: data, as: UTF8.self)) else { return }
        _ = try? Model(architecture).stateDictEntries()
    },
]

/// One scratch file per process for the targets that read files (in shared memory where there is some).
let scratchFile: URL = {
    let folder = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    return URL(fileURLWithPath: folder).appendingPathComponent(
        "bossnet-fuzz-\(ProcessInfo.processInfo.processIdentifier).pth")
}()

func preprocess(_ image: RGBImage) {
    guard image.width * image.height <= 1 << 16 else { return }
    _ = try? Preprocess.evaluationTensor(image, inputSize: 40)
}

#if FUZZING
    /// The target chosen by BOSSNET_FUZZ_TARGET, looked up once.
    let chosenTarget: @Sendable (Data) -> Void = {
        let name = ProcessInfo.processInfo.environment["BOSSNET_FUZZ_TARGET"] ?? ""
        guard let target = fuzzTargets[name] else {
            FileHandle.standardError.write(
                Data("BOSSNET_FUZZ_TARGET must be one of: \(fuzzTargets.keys.sorted().joined(separator: ", "))\n".utf8))
            exit(2)
        }
        return target
    }()

    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOne(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
        chosenTarget(bytes.map { Data(bytes: $0, count: count) } ?? Data())
        return 0
    }

    /// libFuzzer's driver, for a program that keeps its own entry point.
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<Int32>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32

    /// The entry point SwiftPM links an executable target to (its main is `<module>_main`): libFuzzer's driver.
    @_cdecl("bossnet_fuzz_main")
    public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
        var count = argc
        var arguments = argv
        return runFuzzerDriver(&count, &arguments, fuzzOne)
    }
#else
    @main
    enum FuzzReplay {
        static func main() {
            let arguments = CommandLine.arguments.dropFirst()
            guard let name = arguments.first, let target = fuzzTargets[name] else {
                print(
                    "usage: bossnet-fuzz TARGET FILE...   (targets: \(fuzzTargets.keys.sorted().joined(separator: ", ")))"
                )
                exit(arguments.first == nil ? 0 : 2)
            }
            var count = 0
            for path in arguments.dropFirst() {
                guard let data = FileManager.default.contents(atPath: path) else {
                    print("cannot read \(path)")
                    exit(1)
                }
                target(data)
                count += 1
            }
            print("\(name): \(count) inputs, no crash")
        }
    }
#endif
