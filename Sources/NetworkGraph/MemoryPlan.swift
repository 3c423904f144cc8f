import Foundation

/// Where activations live: every intermediate tensor (and each node's scratch) gets a byte range in one pooled
/// "arena" buffer, and tensors whose lifetimes do not overlap share memory.
///
/// Lifetimes come from the node order: a tensor lives from the node that writes it to the last node that reads it,
/// widened to whole runs of a level (``Graph/levelRuns``), whose nodes run with no barrier between them.
/// Placement is greedy best-offset in decreasing size (the arena planners of TFLite and ncnn work alike): each tensor
/// takes the lowest aligned offset that does not overlap, in both time and space, a tensor placed before it.
/// The graph's input and output get buffers of their own, so the host can write and read them between runs.
///
/// No arena is larger than `capacity` (the device's largest single buffer): what does not fit one opens the next.
public struct MemoryPlan: Sendable {
    /// A byte range in the arena.
    public struct Region: Sendable, Equatable {
        /// Which arena.
        public var arena: Int = 0
        public var offset: Int
        public var bytes: Int
        public var end: Int { offset + bytes }
    }

    /// The arena region of each tensor (`nil` for the graph's input and output).
    public let tensors: [Region?]
    /// The scratch regions of each node (empty for most).
    public let scratch: [[Region]]
    /// Bytes each arena needs; together the peak of live activations, with alignment.
    public let arenas: [Int]
    /// Bytes of all arenas.
    public var arenaBytes: Int { arenas.reduce(0, +) }
    /// What the arena tensors would take with no sharing.
    public let unsharedBytes: Int
    /// Offsets are multiples of this (enough for any device's storage and texel-buffer offset alignment).
    public static let alignment = 256

    /// Plans `graph`, where node `i` needs scratch of `scratchBytes[i]` bytes each and each activation value takes
    /// `elementBytes`. With `share` false every tensor gets its own region (for checking every intermediate result).
    /// A region larger than `capacity` still gets an arena of its own (the session refuses it before allocating).
    public init(graph: Graph, scratchBytes: [[Int]], elementBytes: Int = 4, share: Bool = true, capacity: Int = Int.max)
    {
        let lastUse = graph.lastUse
        // Nodes of one level run side by side, with no barrier between them: memory lives from the start of its
        // writer's run to the end of its last reader's, so that no node writes where another of its run reads.
        let runs = graph.levelRuns
        var items: [Lifetime] = []
        var owners: [(tensor: TensorID?, scratch: (node: Int, index: Int)?)] = []
        for (index, node) in graph.nodes.enumerated() where node.output != graph.output {
            let bytes = Self.padded(graph.shapes[node.output].count * elementBytes)
            // A tensor nobody reads still lives through the node that writes it.
            items.append(
                Lifetime(
                    bytes: bytes, first: runs[index].lowerBound, last: runs[lastUse[node.output] ?? index].upperBound))
            owners.append((node.output, nil))
        }
        for (node, sizes) in scratchBytes.enumerated() {
            for (index, bytes) in sizes.enumerated() {
                items.append(
                    Lifetime(bytes: Self.padded(bytes), first: runs[node].lowerBound, last: runs[node].upperBound))
                owners.append((nil, (node, index)))
            }
        }
        let (regions, arenas) = Self.place(items, share: share, capacity: capacity)
        var tensors = [Region?](repeating: nil, count: graph.shapes.count)
        var scratch = scratchBytes.map { [Region](repeating: Region(offset: 0, bytes: 0), count: $0.count) }
        for (owner, region) in zip(owners, regions) {
            if let tensor = owner.tensor { tensors[tensor] = region }
            if let (node, index) = owner.scratch { scratch[node][index] = region }
        }
        self.tensors = tensors
        self.scratch = scratch
        self.arenas = arenas
        unsharedBytes = items.reduce(0) { $0 + Self.aligned($1.bytes) }
    }

    /// Memory that lives from step `first` to step `last`, inclusive.
    public struct Lifetime: Sendable {
        public var bytes: Int
        public var first: Int
        public var last: Int

        public init(bytes: Int, first: Int, last: Int) { (self.bytes, self.first, self.last) = (bytes, first, last) }
    }

    /// Each item's region (in `items`' order) and the bytes of each arena: greedy best-offset in decreasing size, no
    /// two items that live at the same time overlapping (with `share` false, no two items at all), no arena past
    /// `capacity` unless one item alone is larger.
    public static func place(_ items: [Lifetime], share: Bool = true, capacity: Int = Int.max) -> (
        regions: [Region], arenas: [Int]
    ) {
        var placed: [(item: Lifetime, region: Region)] = []
        var regions = [Region](repeating: Region(offset: 0, bytes: 0), count: items.count)
        var ends: [Int] = [0]
        // Largest first; ties in order of first use, so the result is deterministic.
        let order = items.indices.sorted {
            (items[$0].bytes, -items[$0].first, -$0) > (items[$1].bytes, -items[$1].first, -$1)
        }
        for index in order {
            let item = items[index]
            var region: Region?
            for arena in ends.indices {
                var offset = 0
                if share {
                    let conflicts = placed.filter {
                        $0.region.arena == arena && $0.item.first <= item.last && item.first <= $0.item.last
                    }
                    .map(\.region).sorted { $0.offset < $1.offset }
                    for other in conflicts where offset + item.bytes > other.offset {
                        offset = max(offset, Self.aligned(other.end))
                    }
                } else {
                    offset = Self.aligned(ends[arena])
                }
                if offset + item.bytes <= capacity || (offset == 0 && ends[arena] == 0) {
                    region = Region(arena: arena, offset: offset, bytes: item.bytes)
                    break
                }
            }
            let chosen = region ?? Region(arena: ends.count, offset: 0, bytes: item.bytes)
            if chosen.arena == ends.count { ends.append(0) }
            placed.append((item, chosen))
            regions[index] = chosen
            ends[chosen.arena] = max(ends[chosen.arena], chosen.end)
        }
        return (regions, ends.map { max(Self.aligned($0), Self.alignment) })
    }

    /// Sizes are padded to whole vec4s, so RGBA32F views of a tensor stay inside its region.
    static func padded(_ bytes: Int) -> Int { max(16, (bytes + 15) / 16 * 16) }
    static func aligned(_ bytes: Int) -> Int { (bytes + alignment - 1) / alignment * alignment }
}
