using System.Buffers.Binary;
using System.Text;
using Sharpen.Checkpoints;
using Sharpen.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Tests.Checkpoints;

public sealed class SafetensorsTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "sharpen-safetensors-" + Guid.NewGuid().ToString("N"));

    public SafetensorsTests()
    {
        TorchRuntime.EnsureLoaded();
        Directory.CreateDirectory(_dir);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string PathOf(string name) => Path.Combine(_dir, name);

    /// <summary>Writes a file by hand: u64 LE header length (or <paramref name="lengthField"/>), header, data.</summary>
    string WriteRaw(string name, string header, byte[] data, ulong? lengthField = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, lengthField ?? (ulong)json.Length);
        json.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + json.Length);
        var path = PathOf(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    static byte[] Bytes(params int[] values) => values.Select(v => (byte)v).ToArray();

    static byte[] RawBytes(Tensor t) => t.contiguous().bytes.ToArray();

    // ---- round trips ----

    static readonly long[][] Shapes = [[], [0, 3], [5], [3, 4, 2], [1, 7]];

    [Fact]
    public void F32_round_trip_is_bit_identical_for_all_shapes()
    {
        using var scope = NewDisposeScope();
        var gen = new torch.Generator(1234);
        var originals = new Dictionary<string, Tensor>();
        var i = 0;
        foreach (var shape in Shapes) originals[$"t{i++}"] = randn(shape, generator: gen);
        originals["ids"] = tensor(new long[] { 7, -3, long.MaxValue });
        originals["mask"] = tensor(new[] { true, false, true });
        var path = PathOf("rt.safetensors");

        Safetensors.Save(path, originals);
        var loaded = Safetensors.Load(path);

        Assert.Equal(originals.Keys.Order(), loaded.Keys.Order());
        foreach (var (name, original) in originals)
        {
            Assert.Equal(original.dtype, loaded[name].dtype);
            Assert.Equal(original.shape, loaded[name].shape);
            Assert.Equal(RawBytes(original), RawBytes(loaded[name]));
        }
        Assert.Equal(ScalarType.Float32, loaded["t0"].dtype);
        Assert.Equal(0, loaded["t0"].dim());
    }

    [Fact]
    public void BF16_save_loads_back_the_bf16_rounded_values_exactly()
    {
        using var scope = NewDisposeScope();
        var gen = new torch.Generator(99);
        var originals = new Dictionary<string, Tensor> { ["a"] = randn(new long[] { 6, 5 }, generator: gen), ["b"] = randn(new long[] { 17 }, generator: gen) };
        var path = PathOf("bf16.safetensors");

        Safetensors.Save(path, originals, ScalarType.BFloat16);
        var header = Safetensors.ReadHeader(path);
        var loaded = Safetensors.Load(path);

        Assert.All(header.Tensors.Values, e => Assert.Equal("BF16", e.DType));
        Assert.Equal(60, header.Tensors["a"].ByteCount);
        foreach (var (name, original) in originals)
        {
            var rounded = original.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32);
            Assert.Equal(RawBytes(rounded), RawBytes(loaded[name]));
        }
    }

    [Fact]
    public void BF16_writer_emits_known_bit_patterns()
    {
        using var scope = NewDisposeScope();
        var path = PathOf("bits.safetensors");
        // 1.0 = 0x3F80, 3.140625 = 0x4049, -123.5 = 0xC2F7; all exact in BF16.
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["x"] = tensor(new[] { 1.0f, 3.140625f, -123.5f }) }, ScalarType.BFloat16);

        var file = File.ReadAllBytes(path);
        var n = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        Assert.Equal(Bytes(0x80, 0x3F, 0x49, 0x40, 0xF7, 0xC2), file[(8 + n)..]);
    }

    [Fact]
    public void Written_header_is_padded_to_8_bytes_and_matches_the_expected_json()
    {
        using var scope = NewDisposeScope();
        var path = PathOf("pad.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["b"] = tensor(new[] { 1.5f, -0.25f }),
            ["a"] = tensor(new[] { 2.0f }).reshape(1, 1),
        };
        Safetensors.Save(path, tensors, metadata: new Dictionary<string, string> { ["format"] = "pt" });

        var file = File.ReadAllBytes(path);
        var n = BinaryPrimitives.ReadUInt64LittleEndian(file);
        Assert.Equal(0UL, n % 8);
        var header = Encoding.UTF8.GetString(file, 8, (int)n);
        const string expected = """{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""";
        Assert.Equal(expected, header.TrimEnd(' '));
        Assert.Equal(new string(' ', (8 - expected.Length % 8) % 8), header[expected.Length..]);
        // 2.0f = 0x40000000, 1.5f = 0x3FC00000, -0.25f = 0xBE800000, little-endian, in name order.
        Assert.Equal(Bytes(0, 0, 0, 0x40, 0, 0, 0xC0, 0x3F, 0, 0, 0x80, 0xBE), file[(8 + (int)n)..]);

        var parsed = Safetensors.ReadHeader(path);
        Assert.Equal(8 + (long)n, parsed.DataStart);
        Assert.Equal("pt", parsed.Metadata["format"]);
        Assert.Equal(new long[] { 1, 1 }, parsed.Tensors["a"].Shape);
        Assert.Equal((4L, 12L), (parsed.Tensors["b"].Begin, parsed.Tensors["b"].End));
    }

    [Fact]
    public void Save_replaces_an_existing_file_and_leaves_no_temp_file()
    {
        using var scope = NewDisposeScope();
        var path = PathOf("replace.safetensors");
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["x"] = tensor(new[] { 1f, 2f }) });
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["y"] = tensor(new[] { 3f }) });

        Assert.Equal(new[] { "y" }, Safetensors.ReadHeader(path).Tensors.Keys);
        Assert.Equal(new[] { path }, Directory.GetFiles(_dir));
    }

    [Fact]
    public void Chunked_reads_and_writes_give_the_same_bytes()
    {
        using var scope = NewDisposeScope();
        var gen = new torch.Generator(7);
        var originals = new Dictionary<string, Tensor> { ["m"] = randn(new long[] { 5, 7 }, generator: gen), ["v"] = randn(new long[] { 3 }, generator: gen) };
        var whole = PathOf("whole.safetensors");
        var chunked = PathOf("chunked.safetensors");

        Safetensors.Save(whole, originals);
        Safetensors.Save(chunked, originals, ScalarType.Float32, null, chunkBytes: 12);   // 3 floats per write
        var loaded = Safetensors.Load(chunked, ScalarType.Float32, null, chunkBytes: 8);  // 2 floats per read

        Assert.Equal(File.ReadAllBytes(whole), File.ReadAllBytes(chunked));
        foreach (var (name, original) in originals)
            Assert.Equal(RawBytes(original), RawBytes(loaded[name]));
    }

    [Fact]
    public void Non_ascii_names_and_metadata_round_trip()
    {
        using var scope = NewDisposeScope();
        var path = PathOf("names.safetensors");
        var name = "model.layers.0.mlp.gate+up<proj>.wéight";
        Safetensors.Save(path, new Dictionary<string, Tensor> { [name] = tensor(new[] { 1f }) },
                         metadata: new Dictionary<string, string> { ["note"] = "ünïcode & \"quotes\"" });

        var header = Safetensors.ReadHeader(path);
        Assert.Equal(new[] { name }, header.Tensors.Keys);
        Assert.Equal("ünïcode & \"quotes\"", header.Metadata["note"]);
    }

    // ---- reading a file written by hand ----

    const string HandHeader =
        """{"__metadata__":{"format":"pt","source":"hand"},"f32":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"f16":{"dtype":"F16","shape":[3],"data_offsets":[8,14]},"bf16":{"dtype":"BF16","shape":[3,1],"data_offsets":[14,20]},"ids":{"dtype":"I64","shape":[2],"data_offsets":[20,36]}}""";

    static readonly byte[] HandData =
    [
        0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x80, 0xBE,        // F32 1.5, -0.25
        0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38,                    // F16 1.0, -2.0, 0.5
        0x80, 0x3F, 0x49, 0x40, 0xF7, 0xC2,                    // BF16 1.0, 3.140625, -123.5
        0x07, 0, 0, 0, 0, 0, 0, 0, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // I64 7, -3
    ];

    [Fact]
    public void Hand_written_file_loads_known_values_and_metadata()
    {
        using var scope = NewDisposeScope();
        var path = WriteRaw("hand.safetensors", HandHeader, HandData);

        var header = Safetensors.ReadHeader(path);
        var loaded = Safetensors.Load(path);

        Assert.Equal(new Dictionary<string, string> { ["format"] = "pt", ["source"] = "hand" }, header.Metadata);
        Assert.Equal("F16", header.Tensors["f16"].DType);
        Assert.Equal(8 + Encoding.UTF8.GetByteCount(HandHeader), header.DataStart);
        Assert.Equal(new[] { 1.5f, -0.25f }, loaded["f32"].data<float>().ToArray());
        Assert.Equal(new[] { 1.0f, -2.0f, 0.5f }, loaded["f16"].data<float>().ToArray());
        Assert.Equal(new[] { 1.0f, 3.140625f, -123.5f }, loaded["bf16"].data<float>().ToArray());
        Assert.Equal(new long[] { 3, 1 }, loaded["bf16"].shape);
        Assert.All(new[] { "f32", "f16", "bf16" }, n => Assert.Equal(ScalarType.Float32, loaded[n].dtype));
        Assert.Equal(ScalarType.Int64, loaded["ids"].dtype);
        Assert.Equal(new long[] { 7, -3 }, loaded["ids"].data<long>().ToArray());
    }

    [Fact]
    public void Load_by_name_returns_only_those_tensors_in_the_requested_dtype()
    {
        using var scope = NewDisposeScope();
        var path = WriteRaw("subset.safetensors", HandHeader, HandData);

        var loaded = Safetensors.Load(path, ScalarType.Float64, ["f16", "bf16"]);

        Assert.Equal(new[] { "bf16", "f16" }, loaded.Keys.Order());
        Assert.Equal(ScalarType.Float64, loaded["f16"].dtype);
        Assert.Equal(new[] { 1.0, -2.0, 0.5 }, loaded["f16"].data<double>().ToArray());
        Assert.Equal(new[] { 1.0, 3.140625, -123.5 }, loaded["bf16"].data<double>().ToArray());
    }

    // ---- untrusted input ----

    static SafetensorsFormatException AssertFormatError(string path, string? tensorName, Action act, string problemContains)
    {
        var e = Assert.Throws<SafetensorsFormatException>(act);
        Assert.Contains(path, e.Message);
        Assert.Equal(tensorName, e.TensorName);
        if (tensorName is not null) Assert.Contains($"'{tensorName}'", e.Message);
        Assert.Contains(problemContains, e.Message);
        return e;
    }

    static string Entry(string name, string dtype, string shape, string offsets) =>
        $$$"""{"{{{name}}}":{"dtype":"{{{dtype}}}","shape":{{{shape}}},"data_offsets":{{{offsets}}}}}""";

    [Fact]
    public void Truncated_data_is_reported_with_the_tensor()
    {
        var path = WriteRaw("trunc.safetensors", Entry("w", "F32", "[4]", "[0,16]"), new byte[8]);
        AssertFormatError(path, "w", () => Safetensors.ReadHeader(path), "past the end of the data buffer");
        AssertFormatError(path, "w", () => Safetensors.Load(path), "truncated");
    }

    [Fact]
    public void Header_length_larger_than_the_file_is_rejected()
    {
        var path = WriteRaw("long.safetensors", Entry("w", "F32", "[1]", "[0,4]"), new byte[4], lengthField: 1000);
        AssertFormatError(path, null, () => Safetensors.ReadHeader(path), "header length 1000 exceeds");
    }

    [Fact]
    public void Oversized_header_length_is_rejected_before_allocating()
    {
        var path = WriteRaw("huge.safetensors", "{}", [], lengthField: 1UL << 40);
        AssertFormatError(path, null, () => Safetensors.Load(path), "exceeds the limit");
    }

    [Fact]
    public void Invalid_json_is_rejected()
    {
        var path = WriteRaw("badjson.safetensors", """{"w": {"dtype": "F32",""", new byte[4]);
        AssertFormatError(path, null, () => Safetensors.ReadHeader(path), "not valid JSON");
    }

    [Fact]
    public void Non_object_header_is_rejected()
    {
        var path = WriteRaw("array.safetensors", "[1,2]", []);
        AssertFormatError(path, null, () => Safetensors.ReadHeader(path), "must be a JSON object");
    }

    [Fact]
    public void Begin_after_end_is_rejected()
    {
        var path = WriteRaw("beginend.safetensors", Entry("w", "F32", "[1]", "[8,4]"), new byte[8]);
        AssertFormatError(path, "w", () => Safetensors.ReadHeader(path), "begin 8 is greater than end 4");
    }

    [Fact]
    public void Offsets_past_the_buffer_are_rejected()
    {
        var path = WriteRaw("past.safetensors", Entry("w", "F32", "[1]", "[12,16]"), new byte[8]);
        AssertFormatError(path, "w", () => Safetensors.ReadHeader(path), "[12, 16]");
    }

    [Fact]
    public void Byte_size_must_match_shape_times_dtype()
    {
        var path = WriteRaw("size.safetensors", Entry("w", "F32", "[3]", "[0,8]"), new byte[8]);
        AssertFormatError(path, "w", () => Safetensors.ReadHeader(path), "needs 12 bytes");
    }

    [Fact]
    public void Unknown_dtype_is_rejected()
    {
        var path = WriteRaw("dtype.safetensors", Entry("w", "F8_XYZ", "[1]", "[0,1]"), new byte[1]);
        AssertFormatError(path, "w", () => Safetensors.ReadHeader(path), "unknown dtype 'F8_XYZ'");
    }

    [Fact]
    public void Overlapping_tensors_are_rejected()
    {
        var header = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""";
        var path = WriteRaw("overlap.safetensors", header, new byte[12]);
        var e = AssertFormatError(path, "b", () => Safetensors.ReadHeader(path), "overlap");
        Assert.Contains("'a'", e.Message);
    }

    [Fact]
    public void Zero_size_tensors_may_share_an_offset()
    {
        using var scope = NewDisposeScope();
        var header = """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]}}""";
        var path = WriteRaw("zero.safetensors", header, Bytes(0, 0, 0x80, 0x3F));
        var loaded = Safetensors.Load(path);
        Assert.Equal(new long[] { 0, 5 }, loaded["e"].shape);
        Assert.Equal(1.0f, loaded["a"].item<float>());
    }

    [Fact]
    public void Negative_shape_is_rejected()
    {
        var path = WriteRaw("neg.safetensors", Entry("w", "F32", "[-1,2]", "[0,8]"), new byte[8]);
        AssertFormatError(path, "w", () => Safetensors.ReadHeader(path), "negative value -1");
    }

    [Fact]
    public void Element_count_overflow_is_rejected()
    {
        var path = WriteRaw("overflow.safetensors", Entry("w", "F32", "[4294967296,4294967296]", "[0,8]"), new byte[8]);
        AssertFormatError(path, "w", () => Safetensors.ReadHeader(path), "overflow");
    }

    [Fact]
    public void Duplicate_keys_are_rejected()
    {
        var header = """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""";
        var path = WriteRaw("dup.safetensors", header, new byte[8]);
        AssertFormatError(path, "a", () => Safetensors.ReadHeader(path), "duplicate");
    }

    [Fact]
    public void Missing_tensor_requested_by_name_is_reported()
    {
        var path = WriteRaw("missing.safetensors", Entry("w", "F32", "[1]", "[0,4]"), new byte[4]);
        AssertFormatError(path, "nope", () => Safetensors.Load(path, names: ["w", "nope"]), "not present");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    public void File_shorter_than_the_length_prefix_is_rejected(int length)
    {
        var path = PathOf($"short{length}.safetensors");
        File.WriteAllBytes(path, new byte[length]);
        AssertFormatError(path, null, () => Safetensors.Load(path), $"file is {length} bytes");
    }

    [Fact]
    public void Missing_file_is_reported_as_a_format_error()
    {
        var path = PathOf("nothing-here.safetensors");
        AssertFormatError(path, null, () => Safetensors.ReadHeader(path), "not found");
    }

    // ---- sharded checkpoints ----

    string WriteShardedCheckpoint(string weightMap)
    {
        WriteRaw("model-00001-of-00002.safetensors",
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]}}""",
            Bytes(0, 0, 0xC0, 0x3F, 0, 0, 0x80, 0xBE, 0x49, 0x40));
        WriteRaw("model-00002-of-00002.safetensors",
            """{"__metadata__":{"format":"pt"},"c":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}""",
            Bytes(0x00, 0x3C, 0x00, 0xC0));
        var index = PathOf("model.safetensors.index.json");
        File.WriteAllText(index, $$$"""{"metadata":{"total_size":14},"weight_map":{{{{weightMap}}}}}""");
        return index;
    }

    const string GoodMap = """
        "a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors"
        """;

    [Fact]
    public void Sharded_checkpoint_loads_every_tensor()
    {
        using var scope = NewDisposeScope();
        var index = WriteShardedCheckpoint(GoodMap);

        var loaded = Safetensors.LoadSharded(index);

        Assert.Equal(new[] { "a", "b", "c" }, loaded.Keys.Order());
        Assert.Equal(new[] { 1.5f, -0.25f }, loaded["a"].data<float>().ToArray());
        Assert.Equal(new[] { 3.140625f }, loaded["b"].data<float>().ToArray());
        Assert.Equal(new[] { 1.0f, -2.0f }, loaded["c"].data<float>().ToArray());
    }

    [Fact]
    public void Sharded_index_naming_a_missing_file_is_reported()
    {
        var index = WriteShardedCheckpoint(GoodMap + ""","d":"model-00003-of-00002.safetensors" """);
        AssertFormatError(index, "d", () => Safetensors.LoadSharded(index), "model-00003-of-00002.safetensors");
    }

    [Fact]
    public void Sharded_index_naming_a_tensor_absent_from_its_shard_is_reported()
    {
        var index = WriteShardedCheckpoint(GoodMap.Replace("\"b\"", "\"z\""));
        AssertFormatError(index, "z", () => Safetensors.LoadSharded(index), "no such tensor");
    }

    [Fact]
    public void Sharded_index_may_not_point_outside_its_folder()
    {
        var index = WriteShardedCheckpoint(GoodMap + ""","d":"../elsewhere.safetensors" """);
        AssertFormatError(index, "d", () => Safetensors.LoadSharded(index), "plain file name");
    }
}
