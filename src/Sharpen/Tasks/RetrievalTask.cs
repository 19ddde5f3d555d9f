namespace Sharpen.Tasks;

/// <summary>
/// A small synthetic retrieval task for ranking policies (Neural PG-RANK's setting at toy scale): words belong to topics;
/// a query is a few words of one topic; its candidates are documents of a few words each, at least two on the query's
/// topic (one of them sharing a query word) and the rest drawn from any topic. Relevance is graded 2/1/0 (see
/// <see cref="RankingQuery.Relevance"/>), so a good ranker must learn both exact word matches and which words share a
/// topic. Deterministic: query i of a seed is the same on every machine.
/// </summary>
public sealed class RetrievalTask
{
    const ulong Salt = 0x4A4E_4B;

    /// <summary>Creates the task; throws <see cref="ArgumentOutOfRangeException"/> for invalid options.</summary>
    public RetrievalTask(RetrievalOptions? options = null)
    {
        Options = options ?? new RetrievalOptions();
        Options.Validate();
    }

    /// <summary>The options this task was made with.</summary>
    public RetrievalOptions Options { get; }

    /// <summary>The topic of word <paramref name="word"/>.</summary>
    public int TopicOf(int word) => word / Options.WordsPerTopic;

    /// <summary>Returns <paramref name="count"/> queries; the same seed gives the same queries.</summary>
    public IReadOnlyList<RankingQuery> Generate(int count, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var queries = new RankingQuery[count];
        for (var i = 0; i < count; i++) queries[i] = GenerateOne(SeededRandom.ForProblem(seed, i, Salt));
        return queries;
    }

    RankingQuery GenerateOne(SeededRandom rng)
    {
        var o = Options;
        var topic = rng.Next(0, o.Topics - 1);
        var query = Words(rng, topic, o.QueryWords);
        var docs = new int[o.Candidates][];
        var relevance = new int[o.Candidates];
        for (var c = 0; c < o.Candidates; c++)
        {
            var docTopic = c < 2 ? topic : rng.Next(0, o.Topics - 1);
            var words = Words(rng, docTopic, o.DocumentWords);
            if (c == 0 && !words.Intersect(query).Any()) words[0] = query[0];   // one candidate shares a query word
            docs[c] = words;
            relevance[c] = docTopic != topic ? 0 : words.Intersect(query).Any() ? 2 : 1;
        }
        // Shuffle the candidates so position carries no signal.
        for (var c = o.Candidates - 1; c > 0; c--)
        {
            var j = rng.Next(0, c);
            (docs[c], docs[j]) = (docs[j], docs[c]);
            (relevance[c], relevance[j]) = (relevance[j], relevance[c]);
        }
        return new RankingQuery(query, docs, relevance);
    }

    int[] Words(SeededRandom rng, int topic, int count)
    {
        var pool = Enumerable.Range(topic * Options.WordsPerTopic, Options.WordsPerTopic).ToArray();
        for (var i = 0; i < count; i++)
        {
            var j = rng.Next(i, pool.Length - 1);
            (pool[i], pool[j]) = (pool[j], pool[i]);
        }
        return pool[..count];
    }
}
