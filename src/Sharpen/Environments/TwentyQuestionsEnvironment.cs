using Sharpen.Data;
using Sharpen.Tasks;

namespace Sharpen.Environments;

/// <summary>
/// Twenty questions over a small ontology (LMRL-Gym's twenty questions in miniature): a secret object drawn from the
/// seed; the policy asks <c>is it X?</c> (an optional <c>a</c>/<c>an</c> before X, the <c>?</c> optional) where X is an
/// attribute (<see cref="Attributes"/>) or an object (<see cref="Objects"/>), and the scripted answerer says
/// <c>yes</c>, <c>no</c>, or <c>invalid</c> for anything else. Naming the secret object wins.
/// <code>
/// is it an animal? → yes     is it big? → no     is it a cat? → correct (reward 1, done)
/// </code>
/// Every object differs from every other in some attribute, so asking attributes then guessing always wins.
/// Info: <c>outcome</c>, <c>valid</c>.
/// </summary>
public sealed class TwentyQuestionsEnvironment : TextEnvironment
{
    const ulong Salt = 0x2001_0001;
    const string Opening = "twenty questions: ask is it X?";

    /// <summary>The ontology: each object and its attributes.</summary>
    public static IReadOnlyDictionary<string, IReadOnlySet<string>> Ontology { get; } = new Dictionary<string, IReadOnlySet<string>>
    {
        ["cat"] = Set("animal", "pet", "small", "legs", "fur"),
        ["dog"] = Set("animal", "pet", "legs", "fur"),
        ["cow"] = Set("animal", "big", "legs", "fur", "farm"),
        ["horse"] = Set("animal", "big", "legs", "farm"),
        ["fish"] = Set("animal", "pet", "small", "water"),
        ["whale"] = Set("animal", "big", "water"),
        ["bird"] = Set("animal", "small", "legs", "flies"),
        ["tree"] = Set("plant", "big", "wood", "green"),
        ["rose"] = Set("plant", "small", "red"),
        ["grass"] = Set("plant", "small", "green"),
        ["apple"] = Set("plant", "small", "red", "round", "food"),
        ["car"] = Set("thing", "big", "metal", "wheels"),
        ["bike"] = Set("thing", "metal", "wheels"),
        ["ball"] = Set("thing", "small", "round"),
        ["chair"] = Set("thing", "wood", "legs"),
        ["cup"] = Set("thing", "small"),
    };

    /// <summary>The objects, in a fixed order.</summary>
    public static IReadOnlyList<string> Objects { get; } = Ontology.Keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>The attributes one can ask about, sorted.</summary>
    public static IReadOnlyList<string> Attributes { get; } = Ontology.Values.SelectMany(a => a).Distinct().Order(StringComparer.Ordinal).ToArray();

    string _secret = "";

    /// <summary>A game with <paramref name="options"/>.</summary>
    public TwentyQuestionsEnvironment(TwentyQuestionsOptions? options = null)
    {
        Options = options ?? new TwentyQuestionsOptions();
        Options.Validate();
    }

    /// <summary>The options.</summary>
    public TwentyQuestionsOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "twenty-questions";

    /// <inheritdoc />
    public override string Alphabet { get; } = AlphabetOf(Opening, "is it a an ?", "yes no correct invalid lost", string.Concat(Objects), string.Concat(Attributes));

    /// <summary>The current secret object.</summary>
    public string Secret => _secret;

    /// <inheritdoc />
    protected override IReadOnlyList<ChatMessage> OnReset(int seed)
    {
        _secret = Objects[SeededRandom.ForProblem(seed, 0, Salt).Next(0, Objects.Count - 1)];
        return User(Opening);
    }

    /// <inheritdoc />
    protected override EnvironmentStep OnStep(string action)
    {
        bool last = Turns >= Options.MaxTurns;
        var subject = Subject(action);
        string answer;
        bool valid = true;
        if (subject is null) { answer = "invalid"; valid = false; }
        else if (subject == _secret) return Answer("correct", 1, true, ("outcome", "won"), ("valid", "true"));
        else if (Ontology.ContainsKey(subject)) answer = "no";
        else if (Attributes.Contains(subject)) answer = Ontology[_secret].Contains(subject) ? "yes" : "no";
        else { answer = "invalid"; valid = false; }
        if (last) return Answer("lost", 0, true, ("outcome", "lost"), ("valid", valid ? "true" : "false"));
        return Answer(answer, 0, false, ("outcome", "playing"), ("valid", valid ? "true" : "false"));
    }

    /// <summary>X of "is it X?" (lowercased, article dropped), or null when the question has another form.</summary>
    static string? Subject(string action)
    {
        var q = action.Trim().ToLowerInvariant();
        if (q.Length > 64 || !q.StartsWith("is it ", StringComparison.Ordinal)) return null;
        q = q[6..].TrimEnd('?').Trim();
        if (q.StartsWith("a ", StringComparison.Ordinal)) q = q[2..].TrimStart();
        else if (q.StartsWith("an ", StringComparison.Ordinal)) q = q[3..].TrimStart();
        return q.Length == 0 ? null : q;
    }

    static IReadOnlySet<string> Set(params string[] a) => a.ToHashSet(StringComparer.Ordinal);
}
