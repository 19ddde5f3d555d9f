using System.Text;
using System.Text.Json;

namespace Sharpen.Tokenizers;

/// <summary>
/// One token per character of an explicit alphabet, for toy tasks (arithmetic, copying) and smoke tests.
/// Ids: <c>&lt;pad&gt;</c>=0, <c>&lt;bos&gt;</c>=1, <c>&lt;eos&gt;</c>=2, <c>&lt;unk&gt;</c>=3, then one id per alphabet
/// character in the order given. A "character" is a Unicode scalar value, so an emoji is one token.
/// Optional <see cref="Words"/>: multi-character tokens (e.g. the numbers 10–15 of a game, so that every number is one
/// token and one categorical choice) with ids after the alphabet; encoding takes the longest word that starts at each
/// position, else the character. Stored as <c>char_tokenizer.json</c> in a checkpoint folder.
/// </summary>
public sealed class CharTokenizer : ITokenizer
{
    /// <summary>File name inside a checkpoint folder.</summary>
    public const string FileName = "char_tokenizer.json";

    /// <summary>Value of the <c>type</c> key in <see cref="FileName"/>.</summary>
    public const string TypeName = "chars";

    /// <summary>The special tokens, in id order.</summary>
    public static IReadOnlyList<string> SpecialTokens { get; } = ["<pad>", "<bos>", "<eos>", "<unk>"];

    /// <summary>Id of <c>&lt;pad&gt;</c>.</summary>
    public const int PadId = 0;
    /// <summary>Id of <c>&lt;bos&gt;</c>.</summary>
    public const int BosId = 1;
    /// <summary>Id of <c>&lt;eos&gt;</c>.</summary>
    public const int EosId = 2;
    /// <summary>Id of <c>&lt;unk&gt;</c>, used for characters outside the alphabet.</summary>
    public const int UnkId = 3;

    readonly Rune[] _alphabet;
    readonly Dictionary<Rune, int> _ids;
    readonly string[] _words;
    readonly Dictionary<string, int> _wordIds;
    readonly int _longestWord;

    CharTokenizer(string alphabet, Rune[] runes, Dictionary<Rune, int> ids, string[] words)
    {
        Alphabet = alphabet;
        _alphabet = runes;
        _ids = ids;
        _words = words;
        _wordIds = words.Select((w, i) => (w, i)).ToDictionary(x => x.w, x => SpecialTokens.Count + runes.Length + x.i, StringComparer.Ordinal);
        _longestWord = words.Length == 0 ? 0 : words.Max(w => w.Length);
    }

    /// <summary>The multi-character tokens, in id order (the first gets id 4 + the alphabet's length).</summary>
    public IReadOnlyList<string> Words => _words;

    /// <summary>The alphabet, in id order (the first character gets id 4).</summary>
    public string Alphabet { get; }

    /// <summary>Builds a tokenizer over <paramref name="alphabet"/>.</summary>
    /// <exception cref="ArgumentException">The alphabet is empty, repeats a character, or is not valid UTF-16.</exception>
    public static CharTokenizer Create(string alphabet) => Create(alphabet, []);

    /// <summary>Builds a tokenizer over <paramref name="alphabet"/> plus the multi-character tokens <paramref name="words"/>
    /// (each at least two characters long, all of them in the alphabet, none repeated).</summary>
    /// <exception cref="ArgumentException">The alphabet or a word is invalid.</exception>
    public static CharTokenizer Create(string alphabet, IReadOnlyList<string> words)
    {
        ArgumentNullException.ThrowIfNull(alphabet);
        ArgumentNullException.ThrowIfNull(words);
        var problem = TryBuild(alphabet, words, out var tokenizer);
        return problem is null ? tokenizer! : throw new ArgumentException($"Character tokenizer alphabet {problem}", nameof(alphabet));
    }

    /// <summary>Reads <see cref="FileName"/> from <paramref name="directory"/> and validates it.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="TokenizerFileException">The file is malformed or inconsistent.</exception>
    public static CharTokenizer Load(string directory)
    {
        var path = System.IO.Path.Combine(directory, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"Character tokenizer file not found: {path}", path);
        return FromJson(File.ReadAllText(path), path);
    }

    /// <summary>Parses the contents of a <see cref="FileName"/>; <paramref name="sourcePath"/> only labels errors.</summary>
    /// <exception cref="TokenizerFileException">The JSON is malformed or inconsistent.</exception>
    public static CharTokenizer FromJson(string json, string sourcePath = FileName)
    {
        var file = new JsonFile(sourcePath);
        using var doc = file.Parse(json);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw file.Error("(root)", "expected a JSON object");
        var type = file.RequireString(root, "", "type");
        if (type != TypeName) throw file.Error("type", $"is \"{type}\"; expected \"{TypeName}\"");
        var specials = file.RequireArray(root, "", "special_tokens");
        var given = specials.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString() : null).ToArray();
        if (!given.SequenceEqual(SpecialTokens))
            throw file.Error("special_tokens", $"is {specials.GetRawText()}; expected [{string.Join(", ", SpecialTokens.Select(s => $"\"{s}\""))}] in that order");
        var alphabet = file.RequireString(root, "", "alphabet");
        var words = new List<string>();
        if (JsonFile.Optional(root, "words") is { } arr)
        {
            if (arr.ValueKind != JsonValueKind.Array) throw file.Error("words", "expected an array of strings");
            int i = 0;
            foreach (var e in arr.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.String) throw file.Error($"words[{i}]", "expected a string");
                words.Add(e.GetString()!);
                i++;
            }
        }
        var problem = TryBuild(alphabet, words, out var tokenizer);
        return problem is null ? tokenizer! : throw file.Error(problem.StartsWith("word", StringComparison.Ordinal) ? "words" : "alphabet", problem);
    }

    /// <inheritdoc/>
    public int VocabSize => SpecialTokens.Count + _alphabet.Length + _words.Length;
    /// <inheritdoc/>
    public int? BosTokenId => BosId;
    /// <inheritdoc/>
    public int? EosTokenId => EosId;
    /// <inheritdoc/>
    public int? PadTokenId => PadId;

    /// <summary>Maps each character to its id (<c>&lt;unk&gt;</c> when outside the alphabet); with
    /// <paramref name="addSpecialTokens"/>, <c>&lt;bos&gt;</c> comes first. Special-token text such as
    /// <c>"&lt;eos&gt;"</c> inside <paramref name="text"/> is encoded character by character.</summary>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length + 1);
        if (addSpecialTokens) ids.Add(BosId);
        if (_words.Length == 0)
        {
            foreach (var r in text.EnumerateRunes()) ids.Add(_ids.TryGetValue(r, out var id) ? id : UnkId);
            return ids;
        }
        for (int i = 0; i < text.Length;)
        {
            int word = -1, used = 0;
            for (int len = Math.Min(_longestWord, text.Length - i); len >= 2 && word < 0; len--)
                if (_wordIds.TryGetValue(text.Substring(i, len), out var w)) (word, used) = (w, len);
            if (word >= 0) { ids.Add(word); i += used; continue; }
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out var r, out var n) != System.Buffers.OperationStatus.Done) { ids.Add(UnkId); i++; continue; }
            ids.Add(_ids.TryGetValue(r, out var id) ? id : UnkId);
            i += n;
        }
        return ids;
    }

    /// <inheritdoc/>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var sb = new StringBuilder();
        foreach (var id in ids)
        {
            if (id < 0 || id >= VocabSize) continue;
            if (id < SpecialTokens.Count)
            {
                if (!skipSpecialTokens) sb.Append(SpecialTokens[id]);
            }
            else sb.Append(TokenText(id));
        }
        return sb.ToString();
    }

    /// <inheritdoc/>
    public bool IsSpecial(int id) => id >= 0 && id < SpecialTokens.Count;

    /// <inheritdoc/>
    public string? TokenToString(int id) =>
        id < 0 || id >= VocabSize ? null : id < SpecialTokens.Count ? SpecialTokens[id] : TokenText(id);

    string TokenText(int id) => id - SpecialTokens.Count < _alphabet.Length
        ? _alphabet[id - SpecialTokens.Count].ToString() : _words[id - SpecialTokens.Count - _alphabet.Length];

    /// <summary>Writes <see cref="FileName"/> into <paramref name="directory"/>.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(System.IO.Path.Combine(directory, FileName), ToJson());
    }

    /// <summary>The JSON stored in <see cref="FileName"/>.</summary>
    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("type", TypeName);
            w.WriteString("alphabet", Alphabet);
            if (_words.Length > 0)
            {
                w.WriteStartArray("words");
                foreach (var word in _words) w.WriteStringValue(word);
                w.WriteEndArray();
            }
            w.WriteStartArray("special_tokens");
            foreach (var s in SpecialTokens) w.WriteStringValue(s);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    /// <summary>Validates the alphabet; returns the problem, or null and the tokenizer.</summary>
    static string? TryBuild(string alphabet, IReadOnlyList<string> words, out CharTokenizer? tokenizer)
    {
        tokenizer = null;
        if (alphabet.Length == 0) return "is empty; expected at least one character";
        var runes = new List<Rune>();
        var ids = new Dictionary<Rune, int>();
        for (var i = 0; i < alphabet.Length;)
        {
            if (Rune.DecodeFromUtf16(alphabet.AsSpan(i), out var r, out var used) != System.Buffers.OperationStatus.Done)
                return $"has an unpaired surrogate at index {i}; expected valid UTF-16 text";
            if (!ids.TryAdd(r, SpecialTokens.Count + runes.Count))
                return $"repeats the character '{r}' (U+{r.Value:X4}) at index {i}; expected each character once";
            runes.Add(r);
            i += used;
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int k = 0; k < words.Count; k++)
        {
            var word = words[k];
            if (word is null || word.EnumerateRunes().Count() < 2) return $"words[{k}] is \"{word}\"; expected at least two characters (one character is an alphabet token)";
            if (!seen.Add(word)) return $"words[{k}] repeats \"{word}\"; expected each word once";
            if (word.EnumerateRunes().FirstOrDefault(r => !ids.ContainsKey(r)) is { Value: not 0 } missing)
                return $"words[{k}] \"{word}\" has '{missing}', which is not in the alphabet; expected words over the alphabet";
        }
        tokenizer = new CharTokenizer(alphabet, [.. runes], ids, [.. words]);
        return null;
    }
}
