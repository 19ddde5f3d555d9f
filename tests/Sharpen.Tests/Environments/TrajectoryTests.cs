using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Environments;

public class TrajectoryTests
{
    static readonly Dictionary<string, string> NoInfo = [];

    // guess 1-10 / > 5 / lower / > 3 / correct, with hand-made ids.
    static Trajectory Sample() => new()
    {
        Environment = "guess-number", Seed = 3, End = TrajectoryEnd.Done,
        Messages = [new("user", "guess 1-10"), new("assistant", "5"), new("user", "lower"), new("assistant", "3"), new("user", "correct")],
        Turns =
        [
            new TrajectoryTurn(1, 0.0, new Dictionary<string, string> { ["outcome"] = "playing" }) { ContextIds = [1, 7, 8], TokenIds = [20, 9], LogProbs = [-0.5f, -0.25f] },
            new TrajectoryTurn(3, 1.0, new Dictionary<string, string> { ["outcome"] = "won" }) { ContextIds = [10, 11], TokenIds = [21, 9, 2], LogProbs = [-1f, -0.125f, -2f] },
        ],
    };

    [Fact]
    public void The_token_sequence_masks_context_and_aligns_engine_log_probs()
    {
        var s = TrajectorySequence.FromTokens(Sample());
        Assert.Equal([1, 7, 8, 20, 9, 10, 11, 21, 9, 2], s.InputIds);
        Assert.Equal([0f, 0, 0, 1, 1, 0, 0, 1, 1, 1], s.LossMask);
        Assert.Equal([0f, 0, 0, -0.5f, -0.25f, 0, 0, -1f, -0.125f, -2f], s.OldLogProbs!);
        Assert.Equal([4, 9], s.TurnEnds);
        Assert.Equal([0.0, 1.0], s.TurnRewards);
        Assert.Equal(1.0, s.Return);

        var noLp = Sample() with { Turns = Sample().Turns.Select(t => t with { LogProbs = null }).ToArray() };
        Assert.Null(TrajectorySequence.FromTokens(noLp).OldLogProbs);
        var mixed = Sample() with { Turns = [Sample().Turns[0], Sample().Turns[1] with { LogProbs = null }] };
        Assert.Contains("turn 1 lacks log-probs", Assert.Throws<ArgumentException>(() => TrajectorySequence.FromTokens(mixed)).Message);
        var textOnly = Sample() with { Turns = Sample().Turns.Select(t => t with { TokenIds = null, ContextIds = null, LogProbs = null }).ToArray() };
        Assert.Contains("carries no token ids", Assert.Throws<ArgumentException>(() => TrajectorySequence.FromTokens(textOnly)).Message);
    }

    [Fact]
    public void A_text_only_trajectory_is_tokenized_with_the_renderer()
    {
        var tok = CharTokenizer.Create("\n> -0123456789ceglorstuw");
        var t = Sample() with { Turns = Sample().Turns.Select(x => x with { TokenIds = null, ContextIds = null, LogProbs = null }).ToArray() };
        var s = TrajectorySequence.Tokenize(t, tok, TranscriptRenderer.Plain);
        // Plain: "guess 1-10\n> " [5] "\nlower\n> " [3]
        Assert.Equal("guess 1-10\n> 5\nlower\n> 3", tok.Decode(s.InputIds));
        string Masked(float m) => string.Concat(s.InputIds.Where((_, i) => s.LossMask[i] == m).Select(id => tok.Decode([id])));
        Assert.Equal("53", Masked(1));
        Assert.Equal([14, 24], s.TurnEnds);   // BOS + "guess 1-10\n> " (13 characters) before "5", then "\nlower\n> " (9) before "3"
        Assert.Null(s.OldLogProbs);
    }

    [Fact]
    public void Trajectories_round_trip_through_jsonl()
    {
        using var dir = new TempDir();
        var path = dir.File("t.jsonl");
        var text = Sample() with { Seed = null, End = TrajectoryEnd.TurnLimit, Turns = Sample().Turns.Select(x => x with { TokenIds = null, ContextIds = null, LogProbs = null }).ToArray() };
        TrajectoryJsonl.Write(path, [Sample(), text]);
        var lines = File.ReadAllLines(path);
        Assert.Equal(2, lines.Length);
        Assert.Contains("\"reward\":1", lines[0]);
        Assert.Contains("\"end\":\"turn_limit\"", lines[1]);
        var back = TrajectoryJsonl.Read(path);
        Assert.Equal(2, back.Count);
        var a = back[0];
        Assert.Equal(("guess-number", 3, TrajectoryEnd.Done, 1.0), (a.Environment, a.Seed, a.End, a.Return));
        Assert.Equal(Sample().Messages, a.Messages);
        Assert.Equal(TrajectorySequence.FromTokens(Sample()).InputIds, TrajectorySequence.FromTokens(a).InputIds);
        Assert.Equal(TrajectorySequence.FromTokens(Sample()).OldLogProbs, TrajectorySequence.FromTokens(a).OldLogProbs);
        Assert.Equal("won", a.FinalInfo["outcome"]);
        Assert.Equal((null, TrajectoryEnd.TurnLimit, false), (back[1].Seed, back[1].End, back[1].HasTokens));
        Assert.Equal([1, 3], back[1].Turns.Select(t => t.MessageIndex));
    }

    [Theory]
    [InlineData("not json", "not JSON")]
    [InlineData("{\"messages\": []}", "'messages' is missing or empty")]
    [InlineData("{\"messages\": [{\"role\": \"user\"}]}", "'messages[0].content' is missing")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}", "'messages[1].reward' is missing")]
    [InlineData("{\"messages\": [{\"role\": \"assistant\", \"content\": \"b\", \"reward\": \"high\"}]}", "'messages[0].reward' is \"high\"")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"a\", \"reward\": 1}]}", "'messages[0].reward' is given on a 'user' message")]
    [InlineData("{\"messages\": [{\"role\": \"assistant\", \"content\": \"b\", \"reward\": 1, \"token_ids\": [4]}]}", "has only one of 'context_ids' and 'token_ids'")]
    [InlineData("{\"messages\": [{\"role\": \"assistant\", \"content\": \"b\", \"reward\": 1, \"token_ids\": [4], \"context_ids\": [-1]}]}", "'messages[0].context_ids[0]' is -1")]
    [InlineData("{\"messages\": [{\"role\": \"assistant\", \"content\": \"b\", \"reward\": 1, \"token_ids\": [4, 5], \"context_ids\": [1], \"logprobs\": [-1]}]}", "has 1 entries for 2 token ids")]
    [InlineData("{\"messages\": [{\"role\": \"assistant\", \"content\": \"b\", \"reward\": 1}], \"return\": 2}", "'return' is 2 but the assistant messages' rewards sum to 1")]
    [InlineData("{\"messages\": [{\"role\": \"assistant\", \"content\": \"b\", \"reward\": 1}], \"end\": \"timeout\"}", "'end' is \"timeout\"")]
    public void A_bad_line_names_file_line_and_problem(string line, string expected)
    {
        using var dir = new TempDir();
        var path = dir.File("bad.jsonl");
        File.WriteAllText(path, TrajectoryJsonl.ToJson(Sample()) + "\n\n" + line + "\n");
        var e = Assert.Throws<DatasetFormatException>(() => TrajectoryJsonl.Read(path));
        Assert.StartsWith($"{path}:3: ", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
