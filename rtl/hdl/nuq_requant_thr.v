// nuq_requant_thr: requantizer as the paper builds it, for synthesis: a registered i32
// accumulator, the channel's 2^B - 1 thresholds and direction (read from the threshold
// memory), the comparator bank with population count, a registered B-bit code.
`default_nettype none
module nuq_requant_thr #(
    parameter B = 4
) (
    input  wire                        clk,
    input  wire [31:0]                 acc,
    input  wire [((1 << B) - 1)*32-1:0] thr,
    input  wire                        falling,
    output reg  [B-1:0]                code
);
    reg [31:0] acc_q;
    wire [7:0] c;
    nuq_thresh_bank #(.MAXB(B)) u_bank (
        .value({{32{acc_q[31]}}, acc_q}), .thr(thr), .bits(B[3:0]), .falling(falling), .code(c));
    always @(posedge clk) begin
        acc_q <= acc;
        code <= c[B-1:0];
    end
endmodule
`default_nettype wire
