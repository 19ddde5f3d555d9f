namespace Sharpen.Tasks;

/// <summary>
/// An exact fraction with a checked 64-bit numerator and denominator, always reduced and with a
/// positive denominator. Every operation throws <see cref="OverflowException"/> instead of wrapping;
/// dividing by zero throws <see cref="DivideByZeroException"/>.
/// </summary>
internal readonly record struct Rational
{
    public long Num { get; }
    public long Den { get; }

    public Rational(long num, long den)
    {
        if (den == 0) throw new DivideByZeroException();
        if (den < 0) { num = checked(-num); den = checked(-den); }
        var g = Gcd(Math.Abs(num), den);
        Num = g > 1 ? num / g : num;
        Den = g > 1 ? den / g : den;
    }

    public static Rational Of(long value) => new(value, 1);

    public bool IsInteger => Den == 1;

    public static Rational operator +(Rational a, Rational b) =>
        new(checked(a.Num * b.Den + b.Num * a.Den), checked(a.Den * b.Den));

    public static Rational operator -(Rational a, Rational b) =>
        new(checked(a.Num * b.Den - b.Num * a.Den), checked(a.Den * b.Den));

    public static Rational operator *(Rational a, Rational b) =>
        new(checked(a.Num * b.Num), checked(a.Den * b.Den));

    public static Rational operator /(Rational a, Rational b)
    {
        if (b.Num == 0) throw new DivideByZeroException();
        return new(checked(a.Num * b.Den), checked(a.Den * b.Num));
    }

    public override string ToString() => Den == 1 ? Num.ToString(System.Globalization.CultureInfo.InvariantCulture)
        : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Num}/{Den}");

    static long Gcd(long a, long b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }
}
