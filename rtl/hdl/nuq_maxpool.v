// nuq_maxpool: the maximum of a pooling window of up to KMAX2 u8 values (levels or codes:
// codebooks are increasing, so the max of levels is the level of the max code).
// Combinational; n is the window size (kh * kw), 1..KMAX2.
`default_nettype none
module nuq_maxpool #(
    parameter KMAX2 = 16
) (
    input  wire [KMAX2*8-1:0] win,   // element i in win[8i +: 8]
    input  wire [7:0]         n,
    output reg  [7:0]         max
);
    integer i;
    always @(*) begin
        max = 8'd0;
        for (i = 0; i < KMAX2; i = i + 1)
            if (i < n && win[8*i +: 8] > max) max = win[8*i +: 8];
    end
endmodule
`default_nettype wire
