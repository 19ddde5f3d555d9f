using System.Globalization;

namespace Sharpen.Tasks;

/// <summary>
/// Exhaustive search for an arithmetic expression over a few numbers that hits a target, the way a
/// person does it: pick two numbers, combine them, put the result back, repeat. Shallowest solutions
/// are found first (fewest steps), in a fixed order, so the result is deterministic. The cost grows
/// like n!² · 6ⁿ, which is fine for up to 6 numbers.
/// </summary>
internal static class ExpressionSearch
{
    /// <summary>A found solution.</summary>
    /// <param name="Steps">One entry per combination, e.g. <c>3*5=15</c>.</param>
    /// <param name="Expression">The whole expression with the fewest parentheses, e.g. <c>3*5+7</c>.</param>
    public sealed record Solution(IReadOnlyList<string> Steps, string Expression);

    /// <summary>A value in the pool with the expression that made it and that expression's precedence
    /// (3 literal or parenthesized, 2 product/quotient, 1 sum/difference).</summary>
    readonly record struct Item(Rational Value, string Text, int Precedence);

    /// <param name="numbers">The given numbers (at most 6).</param>
    /// <param name="target">The value to reach.</param>
    /// <param name="useAll">Every number exactly once; otherwise each at most once.</param>
    /// <param name="wholeSteps">Only steps whose result is a non-negative integer (no fractions, no negatives).</param>
    public static Solution? Find(IReadOnlyList<long> numbers, Rational target, bool useAll, bool wholeSteps)
    {
        if (numbers.Count is 0 or > 6) throw new ArgumentOutOfRangeException(nameof(numbers), "search handles 1 to 6 numbers");
        var pool = numbers.Select(n => new Item(Rational.Of(n), n.ToString(CultureInfo.InvariantCulture), 3)).ToList();
        if (!useAll || pool.Count == 1)
            foreach (var item in pool)
                if (item.Value == target) return new Solution([], item.Text);
        var steps = new List<string>();
        for (var depth = useAll ? pool.Count - 1 : 1; depth <= pool.Count - 1; depth++)
        {
            if (Search(pool, depth, target, useAll, wholeSteps, steps, out var found))
                return new Solution(steps, found.Text);
        }
        return null;
    }

    static bool Search(List<Item> pool, int stepsLeft, Rational target, bool useAll, bool wholeSteps,
                       List<string> steps, out Item found)
    {
        for (var i = 0; i < pool.Count; i++)
        for (var j = i + 1; j < pool.Count; j++)
        {
            var rest = new List<Item>(pool.Count - 1);
            for (var k = 0; k < pool.Count; k++) if (k != i && k != j) rest.Add(pool[k]);
            foreach (var (item, step) in Combine(pool[i], pool[j], wholeSteps))
            {
                steps.Add(step);
                if (stepsLeft == 1)
                {
                    if (item.Value == target && (!useAll || rest.Count == 0)) { found = item; return true; }
                }
                else
                {
                    rest.Add(item);
                    var ok = Search(rest, stepsLeft - 1, target, useAll, wholeSteps, steps, out found);
                    rest.RemoveAt(rest.Count - 1);
                    if (ok) return true;
                }
                steps.RemoveAt(steps.Count - 1);
            }
        }
        found = default;
        return false;
    }

    /// <summary>The ways to combine two pool items, larger operand first.</summary>
    static IEnumerable<(Item, string)> Combine(Item a, Item b, bool wholeSteps)
    {
        var (x, y) = Compare(a.Value, b.Value) >= 0 ? (a, b) : (b, a);
        yield return Make(x, '+', y, x.Value + y.Value);
        yield return Make(x, '-', y, x.Value - y.Value);
        if (!wholeSteps && Compare(x.Value, y.Value) != 0) yield return Make(y, '-', x, y.Value - x.Value);
        yield return Make(x, '*', y, x.Value * y.Value);
        if (y.Value.Num != 0 && (!wholeSteps || (x.Value / y.Value).IsInteger)) yield return Make(x, '/', y, x.Value / y.Value);
        if (!wholeSteps && x.Value.Num != 0 && Compare(x.Value, y.Value) != 0) yield return Make(y, '/', x, y.Value / x.Value);
    }

    static (Item, string) Make(Item l, char op, Item r, Rational value)
    {
        var (lp, rp) = op switch
        {
            '+' => (false, false),
            '-' => (false, r.Precedence <= 1),
            '*' => (l.Precedence <= 1, r.Precedence <= 1),
            _ => (l.Precedence <= 1, r.Precedence <= 2),
        };
        var text = Wrap(l.Text, lp) + op + Wrap(r.Text, rp);
        var step = Operand(l.Value) + op + Operand(r.Value) + "=" + value;
        return (new Item(value, text, op is '+' or '-' ? 1 : 2), step);
    }

    static string Wrap(string text, bool parens) => parens ? "(" + text + ")" : text;

    static string Operand(Rational v) => v.IsInteger && v.Num >= 0 ? v.ToString() : "(" + v + ")";

    static int Compare(Rational a, Rational b) => (a.Num * b.Den).CompareTo(b.Num * a.Den);
}
