// nuq_requant_fxp: the conventional fixed-point requantizer (the gemmlowp path), for
// comparison: code = clamp(((acc * M + 2^(s-1)) >> s) + offset, 0, 2^B - 1), with the
// channel's i32 multiplier M, shift s and offset read from memory. One 32 x 32 multiplier,
// a rounding adder, an arithmetic shifter, an adder and a clamp; registered in and out.
`default_nettype none
module nuq_requant_fxp #(
    parameter B = 4
) (
    input  wire         clk,
    input  wire [31:0]  acc,
    input  wire [31:0]  mult,
    input  wire [5:0]   shift,     // 1..62
    input  wire [31:0]  offset,
    output reg  [B-1:0] code
);
    reg [31:0] acc_q;
    wire signed [63:0] prod = $signed({{32{acc_q[31]}}, acc_q}) * $signed({{32{mult[31]}}, mult});
    wire signed [63:0] rnd  = (prod + (64'sd1 <<< (shift - 6'd1))) >>> shift;
    wire signed [63:0] v    = rnd + $signed({{32{offset[31]}}, offset});
    wire signed [63:0] top  = (64'sd1 <<< B) - 64'sd1;
    always @(posedge clk) begin
        acc_q <= acc;
        code <= (v < 0) ? {B{1'b0}} : (v > top) ? {B{1'b1}} : v[B-1:0];
    end
endmodule
`default_nettype wire
