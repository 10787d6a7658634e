// nuq_aligned_add: the residual join of FORMAT.md §6.1 in 64-bit two's complement,
//   sum = a * 2^main_shift + align(v),
//   align(v) = v * m                                  (s = 0)
//            = floor((v * m + 2^(s-1)) / 2^s)         (s >= 1, round half up)
// with a the main accumulator (i32), v the shortcut (i32 accumulator or a u8 level
// zero-extended), (m, s) the channel's ALIGNS factor. The sum then goes to the threshold bank.
// One 32 x 32 multiplier, a rounding adder, two shifters. Combinational.
`default_nettype none
module nuq_aligned_add (
    input  wire [31:0] a,           // signed
    input  wire [31:0] v,           // signed
    input  wire [31:0] m,           // signed
    input  wire [5:0]  s,           // 0..62
    input  wire [4:0]  main_shift,  // 0..30
    output wire [63:0] sum          // signed
);
    wire signed [63:0] a64  = {{32{a[31]}}, a};
    wire signed [63:0] v64  = {{32{v[31]}}, v};
    wire signed [63:0] m64  = {{32{m[31]}}, m};
    wire signed [63:0] prod = v64 * m64;
    wire signed [63:0] half = (s == 6'd0) ? 64'sd0 : (64'sd1 <<< (s - 6'd1));
    wire signed [63:0] al   = (prod + half) >>> s;
    assign sum = (a64 <<< main_shift) + al;
endmodule
`default_nettype wire
