// nuq_thresh_bank: the paper's requantizer, 2^b - 1 comparators and a population count.
//
// FORMAT.md §6.5: for thresholds T[0] <= ... <= T[2^b-2] of a channel,
//   rising:  code = #{k : v >= T[k]}     falling: code = #{k : v <= T[k]}
// The value is 64-bit (a residual join's sum, or a sign-extended i32 accumulator); the
// thresholds are i32. Only the first 2^bits - 1 comparators count. Combinational.
`default_nettype none
module nuq_thresh_bank #(
    parameter MAXB = 8,                       // largest code width
    parameter N    = (1 << MAXB) - 1          // comparators
) (
    input  wire [63:0]     value,             // signed
    input  wire [N*32-1:0] thr,               // threshold k in thr[32k +: 32], signed
    input  wire [3:0]      bits,              // code bits b, 1..MAXB
    input  wire            falling,
    output reg  [7:0]      code
);
    integer k;
    reg signed [63:0] t;
    reg [8:0] used;
    always @(*) begin
        code = 8'd0;
        used = (9'd1 << bits) - 9'd1;
        for (k = 0; k < N; k = k + 1) begin
            t = {{32{thr[32*k+31]}}, thr[32*k +: 32]};
            if (k < used) begin
                if (falling ? ($signed(value) <= t) : ($signed(value) >= t))
                    code = code + 8'd1;
            end
        end
    end
endmodule
`default_nettype wire
