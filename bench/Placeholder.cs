namespace Sharpen.Bench;
internal static class Placeholder { }
