namespace Sharpen.Tasks;

/// <summary>One ranking problem: a query, its candidate documents (as word ids) and each candidate's graded relevance.</summary>
/// <param name="Query">The query's word ids.</param>
/// <param name="Documents">Per candidate, its word ids.</param>
/// <param name="Relevance">Per candidate: 2 = on the query's topic and sharing a query word, 1 = on the topic only, 0 = off topic.</param>
public sealed record RankingQuery(int[] Query, int[][] Documents, int[] Relevance);
