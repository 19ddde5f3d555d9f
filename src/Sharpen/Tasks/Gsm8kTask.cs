using Sharpen.Data;

namespace Sharpen.Tasks;

/// <summary>
/// Grade-school math word problems in the GSM8K format (Cobbe et al. 2021, arXiv:2110.14168): JSONL lines
/// <c>{"question": "...", "answer": "...reasoning...\n#### 72"}</c>. The prompt is the question (through
/// <see cref="Gsm8kOptions.PromptTemplate"/>), the worked solution is the file's answer text, and the reference
/// answer is the number after <c>####</c>.
/// <para>The verifier takes the first number after the last <c>####</c> when there is one, otherwise the last
/// number in the completion; <c>$</c> and thousands commas are tolerated (<c>$1,080.50</c> is 1080.5) and numbers
/// are compared exactly as decimals, so <c>18</c>, <c>18.0</c> and <c>018</c> are equal. The format reward goes to
/// completions with a number after <c>####</c>.</para>
/// </summary>
public sealed class Gsm8kTask : IVerifiableTask
{
    const string Expected = "{\"question\": string, \"answer\": string ending in \"#### <number>\"}";
    const ulong Salt = 0x65_0004;
    readonly Problem[] _problems;

    Gsm8kTask(IEnumerable<Problem> problems, Gsm8kOptions options, int skipped, IReadOnlyList<string> errors)
    {
        _problems = problems.ToArray();
        Options = options;
        SkippedLines = skipped;
        Errors = errors;
        var chars = new SortedSet<char>();
        foreach (var p in _problems)
        {
            chars.UnionWith(p.Prompt);
            chars.UnionWith(p.Fields["solution"]);
        }
        Alphabet = string.Concat(chars);
    }

    /// <summary>Reads a GSM8K-format file. A malformed line throws <see cref="DatasetFormatException"/> unless
    /// <see cref="Gsm8kOptions.SkipBadLines"/> is set.</summary>
    public static Gsm8kTask Load(string path, Gsm8kOptions? options = null)
    {
        options ??= new Gsm8kOptions();
        options.Validate();
        var result = JsonlDataset.Read(path, Expected, row => Parse(row, options), options.SkipBadLines);
        return new Gsm8kTask(result.Items, options, result.SkippedLines, result.Errors);
    }

    /// <summary>Makes the task from question/answer pairs already in memory (answer text ending in <c>#### n</c>).</summary>
    public static Gsm8kTask FromPairs(IEnumerable<(string Question, string Answer)> pairs, Gsm8kOptions? options = null)
    {
        options ??= new Gsm8kOptions();
        options.Validate();
        var problems = pairs.Select((p, i) => Make(i + 1, p.Question, p.Answer, new Dictionary<string, string>(), options)
            ?? throw new ArgumentException($"pair {i + 1}: answer has no final \"#### <number>\""));
        return new Gsm8kTask(problems, options, 0, []);
    }

    static Problem Parse(JsonRow row, Gsm8kOptions options)
    {
        var question = row.GetString("question", nonEmpty: true);
        var answer = row.GetString("answer", nonEmpty: true);
        return Make(row.Line, question, answer, row.ExtraFields("question", "answer"), options)
               ?? throw row.Error("\"answer\" has no number after a final \"####\"");
    }

    static Problem? Make(int line, string question, string answer, IReadOnlyDictionary<string, string> extra, Gsm8kOptions options)
    {
        var final = MarkedNumber(answer);
        if (final is null) return null;
        var fields = new Dictionary<string, string>(extra) { ["question"] = question, ["solution"] = answer };
        return new Problem($"gsm8k:{line}", options.PromptTemplate.Replace("{question}", question, StringComparison.Ordinal), final, fields);
    }

    /// <summary>The options this task was made with.</summary>
    public Gsm8kOptions Options { get; }

    /// <summary>All problems of the file, in file order.</summary>
    public IReadOnlyList<Problem> Problems => _problems;

    /// <summary>Malformed lines skipped while loading (only with <see cref="Gsm8kOptions.SkipBadLines"/>).</summary>
    public int SkippedLines { get; }

    /// <summary>The first messages of the skipped lines.</summary>
    public IReadOnlyList<string> Errors { get; }

    /// <inheritdoc />
    public string Name => "gsm8k";

    /// <inheritdoc />
    /// <remarks>The distinct characters of the loaded prompts and solutions.</remarks>
    public string Alphabet { get; }

    /// <inheritdoc />
    /// <remarks>A seeded sample without replacement from the file; <paramref name="count"/> may not exceed
    /// <see cref="Problems"/>.Count. The order depends only on the seed and the file.</remarks>
    public IReadOnlyList<Problem> Generate(int count, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > _problems.Length)
            throw new ArgumentOutOfRangeException(nameof(count), $"the file has {_problems.Length} problems, {count} asked for");
        var order = Enumerable.Range(0, _problems.Length).ToArray();
        var rng = SeededRandom.ForProblem(seed, 0, Salt);
        for (var i = order.Length - 1; i > 0; i--)               // Fisher–Yates
        {
            var j = rng.Next(0, i);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order.Take(count).Select(i => _problems[i]).ToArray();
    }

    /// <inheritdoc />
    public string Solve(Problem problem) =>
        problem.Fields.TryGetValue("solution", out var s) ? s : throw new ArgumentException($"problem {problem.Id} has no 'solution' field", nameof(problem));

    /// <inheritdoc />
    public Verdict Verify(Problem problem, string completion)
    {
        if (completion is null) return new Verdict(0, false, VerdictReasons.NoAnswer, 0, null);
        if (completion.Length > Options.MaxCompletionLength) return new Verdict(0, false, VerdictReasons.TooLong, 0, null);
        var marked = MarkedNumber(completion);
        var answer = marked ?? AnswerText.Numbers(completion).LastOrDefault();
        if (answer is null) return new Verdict(0, false, VerdictReasons.NoAnswer, 0, null);
        var format = marked is not null ? Options.FormatReward : 0;
        var expected = AnswerText.Numbers(problem.Answer).FirstOrDefault() ?? problem.Answer;
        return answer == expected
            ? new Verdict(1 + format, true, VerdictReasons.Correct, format, answer)
            : new Verdict(format, false, VerdictReasons.WrongValue, format, answer);
    }

    /// <inheritdoc />
    /// <remarks>The canonical decimal the verifier compares (e.g. <c>1080.5</c>), or null.</remarks>
    public string? ExtractFinalAnswer(string completion)
    {
        if (completion is null || completion.Length > Options.MaxCompletionLength) return null;
        return MarkedNumber(completion) ?? AnswerText.Numbers(completion).LastOrDefault();
    }

    /// <summary>The first number after the last <c>####</c>, canonical; null without a marker or a number after it.</summary>
    static string? MarkedNumber(string text)
    {
        var at = text.LastIndexOf("####", StringComparison.Ordinal);
        return at < 0 ? null : AnswerText.Numbers(text[(at + 4)..]).FirstOrDefault();
    }
}
