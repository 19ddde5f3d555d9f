using System.Text;
using System.Text.Json.Nodes;
using Sharpen.Tokenizers;
using Oracle = Tokenizers.DotNet.Tokenizer;

namespace Sharpen.Tests.Tokenizers;

/// <summary>
/// Writes a SentencePiece <c>tokenizer.model</c> (the ModelProto protobuf, encoded by hand: no sentencepiece package
/// is installable here) for the vocabulary <see cref="SentencePieceTokenizerJson"/> trains, in Llama 2's layout:
/// &lt;unk&gt; &lt;s&gt; &lt;/s&gt;, 256 byte pieces, then characters and merged pieces scored by merge rank; BPE
/// with byte fallback, identity normalizer with the dummy prefix.
/// Also writes the tokenizer.json transformers' converter would make from it (merges from every split of every
/// piece, ordered by score), which the Rust tokenizer reads as the oracle.
/// </summary>
public static class SentencePieceModelFile
{
    public const int Merges = 220;
    static readonly string[] Specials = ["<unk>", "<s>", "</s>"];

    public static List<(string Piece, float Score, int Type)> Pieces()
    {
        var vocab = SentencePieceTokenizerJson.VocabList(Specials, Merges);
        var (chars, merges) = SentencePieceTokenizerJson.Train(Merges);
        var rank = new Dictionary<string, int>();
        for (var r = 0; r < merges.Count; r++) rank.TryAdd(merges[r].A + merges[r].B, r);
        var list = new List<(string, float, int)>();
        for (var i = 0; i < vocab.Count; i++)
        {
            var p = vocab[i];
            // Types: 1 normal, 2 unknown, 3 control, 6 byte.
            if (i == 0) list.Add((p, 0, 2));
            else if (i < 3) list.Add((p, 0, 3));
            else if (i < 3 + 256) list.Add((p, 0, 6));
            else if (rank.TryGetValue(p, out var r)) list.Add((p, -r, 1));
            else list.Add((p, -1000 - i, 1)); // single characters, never the result of a merge
        }
        return list;
    }

    public static byte[] ModelProto(int modelType = 2)
    {
        var model = new MemoryStream();
        foreach (var (piece, score, type) in Pieces())
        {
            var p = new MemoryStream();
            WriteBytes(p, 1, Encoding.UTF8.GetBytes(piece));
            WriteTag(p, 2, 5);
            p.Write(BitConverter.GetBytes(score));
            WriteVarintField(p, 3, (ulong)type);
            WriteBytes(model, 1, p.ToArray());
        }
        var trainer = new MemoryStream();
        WriteVarintField(trainer, 3, (ulong)modelType);       // model_type: 2 = BPE
        WriteVarintField(trainer, 4, (ulong)Pieces().Count);  // vocab_size
        WriteVarintField(trainer, 35, 1);                     // byte_fallback
        WriteVarintField(trainer, 40, 0);                     // unk_id
        WriteVarintField(trainer, 41, 1);                     // bos_id
        WriteVarintField(trainer, 42, 2);                     // eos_id
        WriteBytes(model, 2, trainer.ToArray());
        var normalizer = new MemoryStream();
        WriteBytes(normalizer, 1, "identity"u8.ToArray());   // name
        WriteVarintField(normalizer, 3, 1);                   // add_dummy_prefix
        WriteVarintField(normalizer, 4, 0);                   // remove_extra_whitespaces
        WriteVarintField(normalizer, 5, 1);                   // escape_whitespaces
        WriteBytes(model, 3, normalizer.ToArray());
        return model.ToArray();
    }

    /// <summary>The Llama 2 tokenizer.json of the same pieces, merges made the way transformers' converter makes them.</summary>
    public static string ConvertedTokenizerJson()
    {
        var pieces = Pieces();
        var index = new Dictionary<string, int>();
        for (var i = 0; i < pieces.Count; i++) index[pieces[i].Piece] = i;
        var merges = new List<(string A, string B, float Score)>();
        for (var i = 3 + 256; i < pieces.Count; i++)
        {
            var (p, score, _) = pieces[i];
            var local = new List<(string, string, float)>();
            for (var k = 1; k < p.Length; k++)
                if (index.ContainsKey(p[..k]) && index.ContainsKey(p[k..])) local.Add((p[..k], p[k..], score));
            merges.AddRange(local.OrderBy(m => index[m.Item1]).ThenBy(m => index[m.Item2]));
        }
        var ordered = merges.OrderByDescending(m => m.Score).ThenByDescending(m => m.A.Length).ThenByDescending(m => m.B.Length).ToList();
        var json = JsonNode.Parse(SentencePieceTokenizerJson.Llama2())!;
        json["model"]!["merges"] = new JsonArray(ordered.Select(m => (JsonNode)JsonValue.Create(m.A + " " + m.B)!).ToArray());
        return json.ToJsonString(new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    static void WriteTag(Stream s, int field, int wire) => WriteVarint(s, (ulong)(field << 3 | wire));
    static void WriteVarintField(Stream s, int field, ulong v) { WriteTag(s, field, 0); WriteVarint(s, v); }
    static void WriteBytes(Stream s, int field, byte[] b) { WriteTag(s, field, 2); WriteVarint(s, (ulong)b.Length); s.Write(b); }
    static void WriteVarint(Stream s, ulong v)
    {
        while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        s.WriteByte((byte)v);
    }
}

/// <summary>A folder with only tokenizer.model (and tokenizer_config.json) loads through TokenizerFiles and matches
/// the Rust tokenizer on the converted tokenizer.json.</summary>
public sealed class SentencePieceModelTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "sharpen-spm-" + Guid.NewGuid().ToString("N"));
    readonly string _oracleDir;

    public SentencePieceModelTests()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllBytes(Path.Combine(_dir, "tokenizer.model"), SentencePieceModelFile.ModelProto());
        _oracleDir = SentencePieceTokenizerJson.WriteFolder(_dir, "converted", SentencePieceModelFile.ConvertedTokenizerJson());
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static IEnumerable<string> Texts() => HfTokenizerParityTests.Texts().Where(t => t.Length > 0 && !t.Contains('<'));

    [Fact]
    public void Ids_and_text_match_the_rust_tokenizer_of_the_converted_file()
    {
        var ours = Assert.IsType<HfTokenizer>(TokenizerFiles.Load(_dir));
        Assert.False(ours.IsByteLevel);
        using var oracle = new Oracle(Path.Combine(_oracleDir, "tokenizer.json"));
        Assert.Equal(1, ours.BosTokenId);
        Assert.Equal(2, ours.EosTokenId);
        var mismatches = new List<string>();
        foreach (var text in Texts())
        {
            var expected = oracle.Encode(text).Select(u => (int)u).ToArray();
            var actual = ours.Encode(text).ToArray();
            if (!expected.SequenceEqual(actual)) mismatches.Add($"{Escape(text)}\n  rust: [{string.Join(",", expected)}]\n  ours: [{string.Join(",", actual)}]");
            else if (oracle.Decode(expected.Select(i => (uint)i).ToArray()) != ours.Decode(actual)) mismatches.Add($"decode of {Escape(text)}: {Escape(ours.Decode(actual))}");
        }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {Texts().Count()} differ:\n" + string.Join("\n", mismatches.Take(10)));
    }

    [Fact]
    public void Bos_follows_the_config_and_is_never_doubled()
    {
        var vocab = SentencePieceTokenizerJson.VocabList(["<unk>", "<s>", "</s>"], SentencePieceModelFile.Merges);
        var ours = TokenizerFiles.Load(_dir);
        var the = vocab.IndexOf("▁the");
        Assert.Equal([1, the], ours.Encode("the"));
        Assert.Equal([the], ours.Encode("the", addSpecialTokens: false));
        Assert.Equal(1, ours.Encode("<s>the")[0]);
        Assert.NotEqual(1, ours.Encode("<s>the")[1]);
        // 😀 (F0 9F 98 80) falls back to byte pieces, at id 3 + byte.
        Assert.Equal([1, vocab.IndexOf("▁"), 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80], ours.Encode("😀"));
        Assert.Equal("😀 the", ours.Decode(ours.Encode("😀 the")));

        File.WriteAllText(Path.Combine(_dir, "tokenizer_config.json"), """{ "add_bos_token": false, "add_eos_token": true }""");
        var configured = TokenizerFiles.Load(_dir);
        Assert.Equal([the, 2], configured.Encode("the"));

        // Saved (as the converted tokenizer.json, as transformers saves it) and loaded again: the same ids.
        var copy = Path.Combine(_dir, "saved");
        configured.Save(copy);
        Assert.True(File.Exists(Path.Combine(copy, "tokenizer.json")));
        Assert.Equal([the, 2], TokenizerFiles.Load(copy).Encode("the"));
        Assert.Equal(ours.Encode("Hello, world! 1,000 😀", addSpecialTokens: false), TokenizerFiles.Load(copy).Encode("Hello, world! 1,000 😀", addSpecialTokens: false));
    }

    [Fact]
    public void A_tiktoken_style_tokenizer_model_is_a_clear_error()
    {
        var dir = Path.Combine(_dir, "tiktoken");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "tokenizer.model"), "IQ== 0\nIg== 1\nIw== 2\n");
        var e = Assert.Throws<TokenizerFileException>(() => TokenizerFiles.Load(dir));
        Assert.Contains(Path.Combine(dir, "tokenizer.model"), e.Message);
        Assert.Contains("tiktoken", e.Message);
    }

    /// <summary>Damaged model files (seeded random byte changes and truncations) either load or fail with a
    /// TokenizerFileException naming the file; nothing else escapes.</summary>
    [Fact]
    public void Damaged_model_files_fail_with_a_clear_error_or_load()
    {
        var good = SentencePieceModelFile.ModelProto();
        var rng = new Random(7);
        int loaded = 0, rejected = 0;
        for (var i = 0; i < 150; i++)
        {
            var bad = (byte[])good.Clone();
            if (i % 3 == 0) bad = bad[..rng.Next(bad.Length)];
            else for (var k = 0; k < 1 + i % 4; k++) bad[rng.Next(bad.Length)] = (byte)rng.Next(256);
            try
            {
                var t = HfTokenizer.FromSentencePieceModel(bad, null, "/m/tokenizer.model");
                t.Decode(t.Encode("Hello, world! 1,000 😀"));
                loaded++;
            }
            catch (TokenizerFileException e)
            {
                Assert.Contains("/m/tokenizer.model", e.Message);
                rejected++;
            }
        }
        Assert.True(rejected > 0 && loaded > 0, $"loaded {loaded}, rejected {rejected}");
    }

    [Fact]
    public void A_unigram_model_names_the_model_type()
    {
        var dir = Path.Combine(_dir, "unigram");
        Directory.CreateDirectory(dir);
        var bpe = SentencePieceModelFile.ModelProto();
        // The trainer spec's model_type (field 3, varint) is 2; a Unigram model has 1.
        var unigram = SentencePieceModelFile.ModelProto(modelType: 1);
        Assert.NotEqual(bpe, unigram);
        File.WriteAllBytes(Path.Combine(dir, "tokenizer.model"), unigram);
        var e = Assert.Throws<TokenizerFileException>(() => TokenizerFiles.Load(dir));
        Assert.Equal("trainer_spec.model_type", e.Key);
        Assert.Contains("unigram", e.Message);
    }

    static string Escape(string s) => string.Concat(s.Select(c => c < 0x20 || c > 0x7E ? $"\\u{(int)c:X4}" : c.ToString()));
}
