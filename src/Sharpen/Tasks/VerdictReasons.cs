namespace Sharpen.Tasks;

/// <summary>The values <see cref="Verdict.Reason"/> can take.</summary>
public static class VerdictReasons
{
    /// <summary>The final answer is right.</summary>
    public const string Correct = "correct";
    /// <summary>The answer parses and follows the rules but has the wrong value.</summary>
    public const string WrongValue = "wrong_value";
    /// <summary>A given number is used more often than it was given.</summary>
    public const string ReusedNumber = "reused_number";
    /// <summary>The expression uses a number that was not given.</summary>
    public const string UnknownNumber = "unknown_number";
    /// <summary>A given number is left unused where every number must be used exactly once.</summary>
    public const string UnusedNumber = "unused_number";
    /// <summary>The final answer is not a well-formed expression or number.</summary>
    public const string Unparsable = "unparsable";
    /// <summary>The expression divides by zero.</summary>
    public const string DivisionByZero = "division_by_zero";
    /// <summary>A division leaves a remainder where only whole-number steps are allowed.</summary>
    public const string NonInteger = "non_integer";
    /// <summary>A number or an intermediate value is too large to handle.</summary>
    public const string Overflow = "overflow";
    /// <summary>Parentheses are nested deeper than the verifier allows.</summary>
    public const string TooDeep = "too_deep";
    /// <summary>The completion is longer than the verifier reads.</summary>
    public const string TooLong = "too_long";
    /// <summary>No final answer was found.</summary>
    public const string NoAnswer = "no_answer";
    /// <summary>A program ran but returned the wrong value on a generated test.</summary>
    public const string FailedTest = "failed_test";
    /// <summary>A program stopped with an error on a test (stack underflow, division by zero, a bad end state).</summary>
    public const string RuntimeError = "runtime_error";
    /// <summary>A program hit the interpreter's step or memory limit on a test.</summary>
    public const string LimitExceeded = "limit_exceeded";
}
