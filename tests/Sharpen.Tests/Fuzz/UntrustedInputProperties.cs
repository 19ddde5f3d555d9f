using System.Diagnostics;
using System.Text;
using CsCheck;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Tokenizers;
using Sharpen.Training;
using static TorchSharp.torch;
using Sharpen.Recipes;

namespace Sharpen.Tests.Fuzz;

/// <summary>
/// Property-based fuzzing (CsCheck) of every file a user hands us: whatever the bytes, reading either succeeds or throws the
/// reader's own typed exception with a message — never a NullReferenceException, IndexOutOfRangeException, InvalidCastException
/// or the like — and each case finishes in bounded time. Iteration counts are modest so each property takes seconds.
/// </summary>
public class UntrustedInputProperties
{
    static readonly TimeSpan PerCase = TimeSpan.FromSeconds(10);

    /// <summary>Runs <paramref name="read"/>; passes when it returns or throws <typeparamref name="TExpected"/> with a message.</summary>
    static void TypedOrNothing<TExpected>(Action read, Func<string> describe) where TExpected : Exception
    {
        var watch = Stopwatch.StartNew();
        try
        {
            read();
        }
        catch (TExpected e)
        {
            Assert.False(string.IsNullOrWhiteSpace(e.Message), $"{typeof(TExpected).Name} without a message for {describe()}");
        }
        catch (Exception e)
        {
            Assert.Fail($"{e.GetType().Name} ({e.Message}) instead of {typeof(TExpected).Name} for {describe()}\n{e.StackTrace}");
        }
        Assert.True(watch.Elapsed < PerCase, $"took {watch.Elapsed.TotalSeconds:F1} s for {describe()}");
    }

    static Gen<string> OneOf(params string[] options) => Gen.Int[0, options.Length - 1].Select(i => options[i]);

    static string Hex(byte[] b) => Convert.ToHexString(b.Length <= 400 ? b : b[..400]);

    // ------------------------------------------------------------------ safetensors

    static byte[] ValidSafetensors()
    {
        using var dir = new TempDir();
        using var a = arange(6, dtype: ScalarType.Float32).reshape(2, 3);
        using var b = ones(4, dtype: ScalarType.Int64);
        Safetensors.Save(dir.File("w.safetensors"), new Dictionary<string, Tensor> { ["model.embed_tokens.weight"] = a, ["ids"] = b },
            metadata: new Dictionary<string, string> { ["format"] = "pt" });
        return File.ReadAllBytes(dir.File("w.safetensors"));
    }

    [Fact]
    public void Mutated_safetensors_headers_fail_with_a_typed_error()
    {
        var valid = ValidSafetensors();
        var headerEnd = 8 + (int)BitConverter.ToUInt64(valid, 0);
        using var dir = new TempDir();
        var path = dir.File("m.safetensors");
        // Up to 4 byte overwrites anywhere in the prefix+header (any byte value, so invalid UTF-8 too), and maybe a truncation.
        var gen = Gen.Select(Gen.Select(Gen.Int[0, headerEnd - 1], Gen.Byte).Array[1, 4], Gen.Int[0, 3], Gen.Int[0, valid.Length]);
        gen.Sample((edits, truncate, cut) =>
        {
            var bytes = (byte[])valid.Clone();
            foreach (var (at, value) in edits) bytes[at] = value;
            if (truncate == 0) bytes = bytes[..cut];
            File.WriteAllBytes(path, bytes);
            TypedOrNothing<SafetensorsFormatException>(() =>
            {
                var loaded = Safetensors.Load(path);
                foreach (var t in loaded.Values) t.Dispose();
            }, () => Hex(bytes));
        }, iter: 300, threads: 1);
    }

    [Fact]
    public void Arbitrary_tensor_names_and_entries_fail_with_a_typed_error()
    {
        using var dir = new TempDir();
        var path = dir.File("n.safetensors");
        var dtypes = OneOf("F32", "F16", "BF16", "I64", "BOOL", "U8", "F64", "X", "");
        var dims = Gen.Int[-2, 5].Array[0, 3];
        var offsets = Gen.Select(Gen.Int[-4, 40], Gen.Int[-4, 40]);
        var name = Gen.Byte.Array[0, 12];                                        // raw bytes: invalid UTF-8 and JSON breakers included
        var entry = Gen.Select(name, dtypes, dims, offsets);
        entry.Array[1, 3].Sample(entries =>
        {
            var header = new MemoryStream();
            void W(string s) => header.Write(Encoding.UTF8.GetBytes(s));
            W("{");
            for (int i = 0; i < entries.Length; i++)
            {
                var (n, dt, shape, range) = entries[i];
                var (begin, end) = range;
                if (i > 0) W(",");
                W("\""); header.Write(n); W($"\":{{\"dtype\":\"{dt}\",\"shape\":[{string.Join(",", shape)}],\"data_offsets\":[{begin},{end}]}}");
            }
            W("}");
            var h = header.ToArray();
            var bytes = new byte[8 + h.Length + 40];
            BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), (ulong)h.Length);
            h.CopyTo(bytes, 8);
            File.WriteAllBytes(path, bytes);
            TypedOrNothing<SafetensorsFormatException>(() =>
            {
                var loaded = Safetensors.Load(path);
                foreach (var t in loaded.Values) t.Dispose();
            }, () => Hex(bytes));
        }, iter: 300, threads: 1);
    }

    // ------------------------------------------------------------------ tokenizer.json

    [Fact]
    public void Mutated_tokenizer_json_fails_with_a_typed_error()
    {
        var valid = Sharpen.Tests.Tokenizers.HfTokenizerTests.TinyJson();
        const string Pieces = "{}[]\":,0123456789-.eE \\ntruefalsenullRegexSplitByteLevel\"type\"\"vocab\"\"merges\"(+)*?";
        // Up to 3 edits: replace a span of up to 8 characters by a short random string of JSON-ish pieces.
        var edit = Gen.Select(Gen.Int[0, valid.Length - 1], Gen.Int[0, 8], Gen.Char[Pieces].Array[0, 6]);
        edit.Array[1, 3].Sample(edits =>
        {
            var json = valid;
            foreach (var (at, len, chars) in edits)
            {
                var start = Math.Min(at, json.Length);
                json = json[..start] + new string(chars) + json[Math.Min(json.Length, start + len)..];
            }
            TypedOrNothing<TokenizerFileException>(() =>
            {
                var tok = HfTokenizer.FromJson(json);
                var ids = tok.Encode("hello world! é");
                _ = tok.Decode(ids);
            }, () => json);
        }, iter: 300, threads: 1);
    }

    // ------------------------------------------------------------------ JSONL

    [Fact]
    public void Arbitrary_jsonl_rows_are_read_or_rejected_line_by_line()
    {
        using var dir = new TempDir();
        var path = dir.File("d.jsonl");
        var token = OneOf("{", "}", "[", "]", ":", ",", "\"", "\"prompt\"", "\"completion\"", "\"chosen\"", "\"rejected\"",
            "\"messages\"", "\"role\"", "\"content\"", "\"assistant\"", "\"user\"", "\"completions\"", "\"ranks\"", "\"x\"", "1", "-3", "2.5",
            "null", "true", "\"\\ud800\"", "\"\\udc00x\"", "\"\\u0000\"", "\"é\"", " ", "\n");
        var rawByte = Gen.Byte[0x80, 0xFF].Select(b => ((char)0).ToString() + (char)b);   // marker + a byte that is not UTF-8 alone
        var line = Gen.Select(Gen.Int[0, 6], token, rawByte).Select((k, t, r) => k == 0 ? r : t).Array[0, 24];
        line.Array[1, 4].Sample(lines =>
        {
            var bytes = new MemoryStream();
            foreach (var l in lines)
            {
                foreach (var piece in l)
                    if (piece.Length == 2 && piece[0] == '\0') bytes.WriteByte((byte)piece[1]);
                    else bytes.Write(Encoding.UTF8.GetBytes(piece));
                bytes.WriteByte((byte)'\n');
            }
            File.WriteAllBytes(path, bytes.ToArray());
            foreach (var skip in new[] { false, true })
            {
                TypedOrNothing<DatasetFormatException>(() => JsonlDataset.LoadSft(path, skip), () => Hex(bytes.ToArray()));
                TypedOrNothing<DatasetFormatException>(() => JsonlDataset.LoadPreferences(path, skip), () => Hex(bytes.ToArray()));
                TypedOrNothing<DatasetFormatException>(() => JsonlDataset.LoadPrompts(path, skip), () => Hex(bytes.ToArray()));
            }
        }, iter: 300, threads: 1);
    }

    // ------------------------------------------------------------------ recipes

    [Fact]
    public void Arbitrary_recipes_fail_with_a_recipe_error()
    {
        var token = OneOf("kind", "sft", "rl", "preference", "model", "init", "path", "task", "name", "countdown", "data", "train",
            "rewards", "clip", "weight", "url", "sft", "max_steps", "rl", "algorithm", "grpo", "eval", "lora", "r", "hidden_size",
            ":", ": ", "\n", "\n  ", "- ", "{", "}", "[", "]", ", ", "&a ", "*a", "<<: ", "!!str ", "!!binary ", "'", "\"", "#", "|", ">",
            "1", "-1", "1e400", "0x10", ".nan", "null", "~", "true", "é", "\\ud800", "---", "...", "%YAML 1.1\n", "? ");
        token.Array[0, 40].Sample(tokens =>
        {
            var yaml = string.Concat(tokens);
            TypedOrNothing<RecipeException>(() => Recipe.Parse(yaml, "fuzz.yaml"), () => yaml);
        }, iter: 500, threads: 1);
    }
}
